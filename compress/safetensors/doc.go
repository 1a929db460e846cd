// Package safetensors reads and writes the Hugging Face safetensors format: an
// 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
//
// Parse treats its input as untrusted: it reads only the header, bounds every
// allocation by the input's size, and rejects malformed headers with errors that
// wrap one of the sentinel errors below (ErrBadHeader, ErrOffsets, ...), so
// callers can tell them apart with errors.Is. Writer streams a file of any size.
// Dir gives one view over a model split into shards.
package safetensors
