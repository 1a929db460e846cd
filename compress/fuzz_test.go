package compress

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
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
			_ = decodeAll(fixed, WithMaxElements(1<<22))
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
	if err := jsonUnmarshal(out[16:16+hlen], &h); err != nil {
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
