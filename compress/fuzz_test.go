package compress

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the container decoder: it must fail
// cleanly or decode, never panic, hang or allocate past its limits. The
// checksums are recomputed on a second path so the fuzzer also reaches the
// payload decoder with inputs that pass them.
func FuzzReader(f *testing.F) {
	f.Add(fixtureContainer(f, "c-ia3"))
	rng := rand.New(rand.NewPCG(15, 16))
	for _, d := range []float64{0.01, 0.3, 0.9} {
		ts := synthTensors(rng, []int{100, 7}, 0)
		coded, err := Compress(ts, WithDensity(d))
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := Write(&buf, Header{Density: d, Alpha: "auto", Scope: ScopeGlobal}, coded); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := decodeAll(data, WithMaxElements(1<<22))
		if err != nil && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrChecksum) &&
			!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrTrailing) {
			t.Fatalf("error outside the sentinels: %v", err)
		}
		if fixed := fixChecksums(data); fixed != nil {
			whole := decodeAll(fixed, WithMaxElements(1<<22))
			chunked := decodeChunked(fixed, 1+len(data)%97, WithMaxElements(1<<22))
			if (whole == nil) != (chunked == nil) {
				t.Fatalf("whole tensors: %v, in chunks: %v", whole, chunked)
			}
		}
	})
}

// FuzzExpand feeds arbitrary bytes, their checksums fixed up when they
// have a container's shape, to Expand, whose decoders run in parallel,
// read ahead or streamed (stream chooses): it must refuse what the
// sequential Reader refuses, and write what it accepts as the sequential
// decoder does.
func FuzzExpand(f *testing.F) {
	f.Add(fixtureContainer(f, "c-ia3"), uint16(0))
	rng := rand.New(rand.NewPCG(17, 18))
	for _, d := range []float64{0.01, 0.3, 0.9} {
		var buf bytes.Buffer
		src := &Source{PeftType: "LORA", ConfigName: AdapterConfigFile, Config: "{}", Tensors: synthTensors(rng, []int{3000, 7, 600}, 0)}
		if _, _, err := Encode(&buf, src, WithDensity(d)); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes(), uint16(d*100))
	}
	f.Fuzz(func(t *testing.T, data []byte, stream uint16) {
		if fixed := fixChecksums(data); fixed != nil {
			data = fixed
		}
		limits := []ReaderOption{WithMaxElements(1 << 20)}
		_, err := Expand(bytes.NewReader(data), t.TempDir(), ExpandOptions{ReaderOptions: limits, MaxOutput: 16 << 20, Overwrite: true, streamAbove: int64(stream)})
		seq := decodeAll(data, limits...)
		switch {
		case err == nil && seq != nil:
			t.Fatalf("Expand wrote what the Reader refuses (%v)", seq)
		case err != nil && seq == nil && !errors.Is(err, ErrOutputLimit) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrBase):
			t.Fatalf("Expand refused what the Reader decodes: %v", err)
		case err == nil:
			dir := t.TempDir()
			_, err := Expand(bytes.NewReader(data), dir, ExpandOptions{ReaderOptions: limits, MaxOutput: 16 << 20, streamAbove: int64(stream)})
			if err != nil {
				t.Fatalf("a second Expand: %v", err)
			}
			if got := readWeights(t, dir); !bytes.Equal(got, referenceWeights(t, data, "", nil)) {
				t.Fatal("Expand wrote other bytes than the sequential decoder")
			}
		}
	})
}

// fixChecksums rewrites the CRCs of a container-shaped input so that it
// passes them, or returns nil when the input does not have that shape.
func fixChecksums(data []byte) []byte {
	if len(data) < 16 || string(data[:8]) != Magic {
		return nil
	}
	out := append([]byte(nil), data...)
	hlen := int(uint32(out[12]) | uint32(out[13])<<8 | uint32(out[14])<<16 | uint32(out[15])<<24)
	if hlen > len(out)-20 {
		return nil
	}
	var h Header
	fr := flate.NewReader(bytes.NewReader(out[16 : 16+hlen])) // the header is DEFLATE compressed
	hj, err := io.ReadAll(io.LimitReader(fr, MaxHeaderBytes))
	if err != nil || jsonUnmarshal(hj, &h) != nil {
		return nil
	}
	putCRC(out[16+hlen:], out[:16+hlen])
	p := 20 + hlen
	for _, t := range h.Tensors {
		if t.Bytes < 0 || int64(len(out)-p) < t.Bytes+4 {
			return out
		}
		putCRC(out[p+int(t.Bytes):], out[p:p+int(t.Bytes)])
		p += int(t.Bytes) + 4
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func putCRC(dst, data []byte) {
	binary.LittleEndian.PutUint32(dst, crc32.Checksum(data, castagnoli))
}

// FuzzTensorDecoder decodes an arbitrary payload twice: whole from memory
// in one chunk, and streamed through a small window in chunks of the
// fuzzer's choosing. Both must agree on every value and on failure, and
// neither may panic or write outside its chunk.
func FuzzTensorDecoder(f *testing.F) {
	rng := rand.New(rand.NewPCG(21, 22))
	var sc scratch
	for _, d := range []float64{0.01, 0.2, 0.7} {
		xs := make([]float32, 3000)
		for i := range xs {
			if rng.Float64() < d {
				xs[i] = float32(rng.NormFloat64())
			}
		}
		tc, _, _ := encodeTensor(xs, 1, &sc)
		f.Add(append([]byte(nil), tc.Payload...), uint16(len(xs)), uint16(tc.Kept), uint16(tc.M), tc.Mode == modeDense, uint16(100), uint8(7))
	}
	f.Fuzz(func(t *testing.T, payload []byte, n, kept, m uint16, dense bool, chunk uint16, window uint8) {
		mode := modeSparse
		if dense {
			mode = modeDense
		}
		tc := tensorCode{Kept: int64(kept), Mode: mode, M: uint32(m), Payload: payload}
		whole := make([]float32, n)
		errWhole := decodeTensor(whole, tc, 1, 0.5, false, 0, max(len(whole), 1))
		streamed := make([]float32, n)
		errStreamed := decodeTensor(streamed, tc, 1, 0.5, false, 64+int(window), 1+int(chunk))
		if (errWhole == nil) != (errStreamed == nil) {
			t.Fatalf("whole: %v, streamed: %v", errWhole, errStreamed)
		}
		if errWhole != nil {
			return
		}
		for i := range whole {
			if math.Float32bits(whole[i]) != math.Float32bits(streamed[i]) {
				t.Fatalf("element %d: whole %v, streamed %v", i, whole[i], streamed[i])
			}
		}
	})
}

// FuzzHeaderJSON feeds arbitrary JSON to the streaming header decoder: it
// must fail cleanly or decode, never panic, and never accept what is not
// JSON.
func FuzzHeaderJSON(f *testing.F) {
	f.Add([]byte(`{"peft_type":"LORA","config_name":"adapter_config.json","config":"{}","metadata":{"format":"pt"},"density":0.2,"alpha":"auto","scope":"global","tensors":[{"name":"a","dtype":"F32","shape":[2,3],"scale":0.5,"kept":1,"mode":"sparse","m":4,"bytes":1}]}`))
	f.Add([]byte(`{"tensors":null,"x":[1,{"y":2}],"density":1}`))
	f.Add([]byte(`{"tensors":[{"name":"a","name":"b","shape":[-1]}]} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Header
		if err := decodeHeader(bytes.NewReader(data), &h); err == nil && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
	})
}
