package safetensors

import "errors"

// Errors returned by this package; the returned errors wrap them with details.
var (
	// ErrHeaderTooLarge: the header length exceeds MaxHeaderSize or the file.
	ErrHeaderTooLarge = errors.New("safetensors: header too large")
	// ErrBadHeader: the header is not a JSON object of the expected form.
	ErrBadHeader = errors.New("safetensors: malformed header")
	// ErrDType: a dtype is unknown, or not usable for the requested conversion.
	ErrDType = errors.New("safetensors: bad dtype")
	// ErrShape: a dimension is negative or the element count overflows int64.
	ErrShape = errors.New("safetensors: bad shape")
	// ErrOffsets: data_offsets are malformed, out of the data buffer, overlap,
	// leave a gap, or disagree with the size implied by dtype and shape.
	ErrOffsets = errors.New("safetensors: bad data offsets")
	// ErrDuplicate: a JSON object repeats a key, or a tensor name repeats.
	ErrDuplicate = errors.New("safetensors: duplicate key")
	// ErrIndex: a shard index (model.safetensors.index.json) is malformed or
	// disagrees with its shards.
	ErrIndex = errors.New("safetensors: bad shard index")
	// ErrNotFound: no such tensor, or no model file in a directory.
	ErrNotFound = errors.New("safetensors: not found")
	// ErrOverrun: a Writer was given more bytes than the current tensor holds.
	ErrOverrun = errors.New("safetensors: data exceeds tensor size")
	// ErrIncomplete: a Writer was closed before every tensor was written.
	ErrIncomplete = errors.New("safetensors: tensor data incomplete")
	// ErrClosed: a Writer was used after Close.
	ErrClosed = errors.New("safetensors: writer closed")
)
