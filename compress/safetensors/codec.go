package safetensors

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// nativeLE reports whether this machine stores a float32 as the four
// little-endian bytes a safetensors file holds, so F32 data can be read
// into and written from []float32 memory as it is.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes is the memory of xs seen as bytes.
func float32Bytes(xs []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), 4*len(xs))
}

// chunkSize is the scratch buffer size for streaming conversions; a multiple of
// every element size so chunks never split an element.
const chunkSize = 64 << 10

// The loops below advance both slices and test their lengths so that the
// compiler drops every bounds check inside them.

// decodeFloat32 converts len(dst) little-endian elements of the float dtype dt
// from src, which must hold them, to float32.
func decodeFloat32(dst []float32, src []byte, dt DType) {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for len(src) >= 4 && len(dst) > 0 {
			dst[0] = math.Float32frombits(le.Uint32(src))
			dst, src = dst[1:], src[4:]
		}
	case BF16:
		for len(src) >= 2 && len(dst) > 0 {
			dst[0] = math.Float32frombits(uint32(le.Uint16(src)) << 16)
			dst, src = dst[1:], src[2:]
		}
	case F16:
		for len(src) >= 2 && len(dst) > 0 {
			dst[0] = f16ToF32(le.Uint16(src))
			dst, src = dst[1:], src[2:]
		}
	case F64:
		for len(src) >= 8 && len(dst) > 0 {
			dst[0] = float32(math.Float64frombits(le.Uint64(src)))
			dst, src = dst[1:], src[8:]
		}
	default:
		panic("safetensors: decodeFloat32 of " + string(dt))
	}
	if len(dst) != 0 {
		panic("safetensors: decodeFloat32: short src")
	}
}

// encodeFloat32 converts src to little-endian elements of the float dtype dt
// in dst, which must hold len(src)*dt.Size() bytes.
func encodeFloat32(dst []byte, src []float32, dt DType) {
	le := binary.LittleEndian
	switch dt {
	case F32:
		for len(dst) >= 4 && len(src) > 0 {
			le.PutUint32(dst, math.Float32bits(src[0]))
			dst, src = dst[4:], src[1:]
		}
	case BF16:
		for len(dst) >= 2 && len(src) > 0 {
			le.PutUint16(dst, f32ToBF16(src[0]))
			dst, src = dst[2:], src[1:]
		}
	case F16:
		for len(dst) >= 2 && len(src) > 0 {
			le.PutUint16(dst, f32ToF16(src[0]))
			dst, src = dst[2:], src[1:]
		}
	case F64:
		for len(dst) >= 8 && len(src) > 0 {
			le.PutUint64(dst, math.Float64bits(float64(src[0])))
			dst, src = dst[8:], src[1:]
		}
	default:
		panic("safetensors: encodeFloat32 to " + string(dt))
	}
	if len(src) != 0 {
		panic("safetensors: encodeFloat32: short dst")
	}
}
