package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func fixtureContainer(t testing.TB, name string) []byte {
	t.Helper()
	src, err := Load(filepath.Join("testdata/peft", name), "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeAll reads every tensor of a container.
func decodeAll(data []byte, opts ...ReaderOption) error {
	r, err := NewReader(bytes.NewReader(data), opts...)
	if err != nil {
		return err
	}
	var dst []float32
	for {
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if dst, err = r.Values(dst); err != nil {
			return err
		}
	}
}

// decodeChunked reads every tensor of a container in chunks of chunk
// elements.
func decodeChunked(data []byte, chunk int, opts ...ReaderOption) error {
	r, err := NewReader(bytes.NewReader(data), opts...)
	if err != nil {
		return err
	}
	dst := make([]float32, chunk)
	for {
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		for r.Remaining() > 0 {
			if err := r.ReadValues(dst[:min(int64(chunk), r.Remaining())]); err != nil {
				return err
			}
		}
	}
}

func TestTruncatedContainer(t *testing.T) {
	data := fixtureContainer(t, "c-ia3")
	for n := 0; n < len(data); n++ {
		err := decodeAll(data[:n])
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d/%d bytes: got %v, want ErrTruncated", n, len(data), err)
		}
	}
	if err := decodeAll(append(data[:len(data):len(data)], 0)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("trailing byte: got %v", err)
	}
}

func TestCorruptContainer(t *testing.T) {
	data := fixtureContainer(t, "c-ia3")
	rng := rand.New(rand.NewPCG(13, 14))
	for range 2000 {
		bad := append([]byte(nil), data...)
		i := rng.IntN(len(bad))
		bad[i] ^= 1 << rng.IntN(8)
		err := decodeAll(bad)
		if err == nil {
			t.Fatalf("flipped a bit at byte %d: no error", i)
		}
		if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrVersion) &&
			!errors.Is(err, ErrLimit) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrTrailing) {
			t.Fatalf("flipped a bit at byte %d: unexpected error %v", i, err)
		}
	}
}

func TestReaderLimits(t *testing.T) {
	data := fixtureContainer(t, "c-ia3")
	if err := decodeAll(data, WithMaxElements(1000)); !errors.Is(err, ErrLimit) {
		t.Fatalf("got %v, want ErrLimit", err)
	}
}

func TestExpandLeavesNothingOnError(t *testing.T) {
	data := fixtureContainer(t, "python-lora-r16")
	bad := append([]byte(nil), data...)
	bad[len(bad)-10] ^= 0xff // last tensor's payload
	out := t.TempDir()
	if _, err := Expand(bytes.NewReader(bad), out, ExpandOptions{}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("got %v, want ErrChecksum", err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 0 {
		t.Fatalf("output dir holds %d entries after a failed expand", len(entries))
	}
}

func TestVerify(t *testing.T) {
	data := fixtureContainer(t, "c-ia3")
	h, err := Verify(bytes.NewReader(data))
	if err != nil || h.PeftType != "IA3" || len(h.Tensors) == 0 {
		t.Fatalf("Verify: %v, %+v", err, h)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-6] ^= 1
	if _, err := Verify(bytes.NewReader(bad)); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt payload: %v", err)
	}
	if _, err := Verify(bytes.NewReader(data[:len(data)-1])); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

// TestHeaderRoundTrip writes a header with every field set and reads it
// back equal: the streaming header decoder knows every field (a field added
// to Header without it fails here, as the literal below must set it).
func TestHeaderRoundTrip(t *testing.T) {
	h := Header{PeftType: PeftTypeFull, ConfigName: ModelConfigFile, Config: `{"a":[1,2]}`, Metadata: map[string]string{"format": "pt", "k": "v"},
		Density: 0.25, Alpha: "1.5", Scope: ScopeTensor, Base: "sha256:00ff", SourceBytes: 12345}
	coded := []Coded{zeros("a", "BF16", 2, 3), zeros("b", "F64")}
	coded[1].Offset, coded[1].Scale = 1, 0.5
	hv := reflect.ValueOf(h)
	for i := range hv.NumField() {
		if f := hv.Type().Field(i); f.Name != "Tensors" && hv.Field(i).IsZero() {
			t.Fatalf("the test header leaves %s unset", f.Name)
		}
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, h, coded); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	h.Tensors = []TensorHeader{coded[0].TensorHeader, coded[1].TensorHeader}
	if got := r.Header(); !reflect.DeepEqual(*got, h) {
		t.Fatalf("read back\n%+v\nwant\n%+v", *got, h)
	}
}
