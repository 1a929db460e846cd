package safetensors

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestParseRejects(t *testing.T) {
	const ok = `"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	data8 := make([]byte, 8)
	tests := []struct {
		name   string
		file   []byte
		want   error
		detail string // a fragment the error message must contain
	}{
		{"short file", []byte{1, 0, 0}, ErrBadHeader, "8-byte"},
		{"header over limit", binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1), ErrHeaderTooLarge, "limit"},
		{"header over file", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...), ErrHeaderTooLarge, "exceeds the 2 bytes"},
		{"header length 2^64-1", binary.LittleEndian.AppendUint64(nil, 1<<64-1), ErrHeaderTooLarge, "limit"},
		{"empty header", build("", nil), ErrBadHeader, "start"},
		{"invalid JSON", build(`{"a":`, nil), ErrBadHeader, ""},
		{"array", build(`[]`, nil), ErrBadHeader, "start"},
		{"string", build(`"x"`, nil), ErrBadHeader, "start"},
		{"null", build(`null`, nil), ErrBadHeader, "start"},
		{"leading space", build(` {}`, nil), ErrBadHeader, "start"},
		{"trailing data", build(`{} x`, nil), ErrBadHeader, "after the JSON object"},
		{"two objects", build(`{}{}`, nil), ErrBadHeader, "after the JSON object"},
		{"trailing comma", build(`{`+ok+`,}`, data8), ErrBadHeader, ""},
		{"invalid UTF-8", build("{\"\xff\":{}}", nil), ErrBadHeader, "UTF-8"},
		{"tensor not object", build(`{"a":[1]}`, nil), ErrBadHeader, `tensor "a"`},
		{"missing dtype", build(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, data8), ErrBadHeader, "no dtype"},
		{"missing shape", build(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, data8), ErrBadHeader, "no shape"},
		{"missing offsets", build(`{"a":{"dtype":"F32","shape":[2]}}`, data8), ErrBadHeader, "no data_offsets"},
		{"unknown field", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, data8), ErrBadHeader, `unknown field "x"`},
		{"dtype not string", build(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, data8[:4]), ErrBadHeader, "want a string"},
		{"metadata not object", build(`{"__metadata__":[],`+ok+`}`, data8), ErrBadHeader, "__metadata__"},
		{"metadata value not string", build(`{"__metadata__":{"k":1},`+ok+`}`, data8), ErrBadHeader, `value for "k"`},
		{"duplicate tensor", build(`{`+ok+`,`+ok+`}`, data8), ErrDuplicate, `"a" appears twice`},
		{"duplicate metadata", build(`{"__metadata__":{},"__metadata__":{},`+ok+`}`, data8), ErrDuplicate, "__metadata__"},
		{"duplicate metadata key", build(`{"__metadata__":{"k":"1","k":"2"},`+ok+`}`, data8), ErrDuplicate, `key "k"`},
		{"duplicate field", build(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, data8), ErrDuplicate, "dtype"},
		{"unknown dtype", build(`{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}`, data8), ErrDType, `"F128"`},
		{"lowercase dtype", build(`{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, data8), ErrDType, `"f32"`},
		{"negative dim", build(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, data8), ErrShape, "negative"},
		{"fractional dim", build(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, data8), ErrShape, "int64"},
		{"exponent dim", build(`{"a":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}`, data8), ErrShape, "int64"},
		{"dim too large", build(`{"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}}`, data8), ErrShape, "int64"},
		{"dim not number", build(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, data8), ErrShape, "integer"},
		{"element count overflow", build(`{"a":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, nil), ErrShape, "overflows"},
		{"byte size overflow", build(`{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}`, data8), ErrShape, "overflows"},
		{"offsets reversed", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, data8), ErrOffsets, "begin <= end"},
		{"offsets negative", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[-4,-4]}}`, nil), ErrOffsets, "begin <= end"},
		{"three offsets", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, data8), ErrOffsets, "3 values"},
		{"offsets not array", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":8}}`, data8), ErrBadHeader, "data_offsets"},
		{"beyond buffer", build(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, data8), ErrOffsets, "beyond"},
		{"size mismatch", build(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, data8), ErrOffsets, "needs 12"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data8), ErrOffsets, "overlaps"},
		{"same range", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, data8), ErrOffsets, "overlaps"},
		{"empty inside another", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, data8), ErrOffsets, "overlaps"},
		{"gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data8), ErrOffsets, "gap of 4 bytes at 0"},
		{"uncovered tail", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, data8), ErrOffsets, "4 bytes after the last tensor"},
		{"data but no tensors", build(`{}`, data8), ErrOffsets, "not covered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBytes(tt.file)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, %v; want %v", f, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not mention %q", err, tt.detail)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name    string
		file    []byte
		tensors int
	}{
		{"empty", build(`{}`, nil), 0},
		{"padded", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}     `, make([]byte, 8)), 1},
		{"whitespace", build("{ \"a\" :\n{\"dtype\":\"U8\",\"shape\":[ 1 ],\"data_offsets\":[0,1]}\t}\r\n", []byte{7}), 1},
		{"null metadata", build(`{"__metadata__":null}`, nil), 0},
		{"scalar", build(`{"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)), 1},
		{"zero elements", build(`{"z":{"dtype":"F32","shape":[3,0],"data_offsets":[8,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]}}`, make([]byte, 8)), 3},
		{"zero then huge dims", build(`{"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}`, nil), 1},
		{"out of offset order", build(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1, 2}), 2},
		{"every dtype", build(`{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},`+
			`"c":{"dtype":"U64","shape":[1],"data_offsets":[16,24]},"d":{"dtype":"F32","shape":[1],"data_offsets":[24,28]},`+
			`"e":{"dtype":"I32","shape":[1],"data_offsets":[28,32]},"f":{"dtype":"U32","shape":[1],"data_offsets":[32,36]},`+
			`"g":{"dtype":"F16","shape":[1],"data_offsets":[36,38]},"h":{"dtype":"BF16","shape":[1],"data_offsets":[38,40]},`+
			`"i":{"dtype":"I16","shape":[1],"data_offsets":[40,42]},"j":{"dtype":"U16","shape":[1],"data_offsets":[42,44]},`+
			`"k":{"dtype":"I8","shape":[1],"data_offsets":[44,45]},"l":{"dtype":"U8","shape":[1],"data_offsets":[45,46]},`+
			`"m":{"dtype":"BOOL","shape":[1],"data_offsets":[46,47]},"n":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[47,48]},`+
			`"o":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[48,49]}}`, make([]byte, 49)), 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBytes(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) != tt.tensors {
				t.Fatalf("%d tensors, want %d", len(f.Tensors), tt.tensors)
			}
			for i := 1; i < len(f.Tensors); i++ {
				if f.Tensors[i-1].Name >= f.Tensors[i].Name {
					t.Errorf("tensors not sorted: %q before %q", f.Tensors[i-1].Name, f.Tensors[i].Name)
				}
			}
			for _, ti := range f.Tensors {
				if ti.Size != ti.NumElements()*int64(ti.DType.Size()) {
					t.Errorf("%s: size %d, want %d", ti.Name, ti.Size, ti.NumElements()*int64(ti.DType.Size()))
				}
				if _, err := f.ReadRaw(ti, nil); err != nil {
					t.Errorf("%s: %v", ti.Name, err)
				}
			}
		})
	}
}

// A header length that the file cannot hold must be rejected before the
// header buffer is allocated.
func TestParseBoundedAllocation(t *testing.T) {
	file := append(binary.LittleEndian.AppendUint64(nil, MaxHeaderSize), `{}`...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := parseBytes(file); !errors.Is(err, ErrHeaderTooLarge) {
			t.Fatalf("Parse = %v, want ErrHeaderTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("10 rejected parses allocated %d bytes", got)
	}
}

func TestParseMetadata(t *testing.T) {
	f, err := parseBytes(build(`{"__metadata__":{"format":"pt","b":"\u00e9\n"}}`, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Metadata) != 2 || f.Metadata["format"] != "pt" || f.Metadata["b"] != "é\n" {
		t.Errorf("metadata = %q", f.Metadata)
	}
	f, err = parseBytes(build(`{}`, nil))
	if err != nil || f.Metadata != nil {
		t.Errorf("Parse({}) = %v, %v; want nil metadata", f, err)
	}
}
