// Package compress implements the ComPEFT codec (Yadav et al., 2023) and its
// container file format (.cpeft).
//
// Compression keeps the top-k magnitudes of an expert's task vector, replaces
// each by its sign times one scale and drops the rest; the resulting ternary
// vector is entropy coded (Golomb-coded gaps plus one sign bit per kept
// element) close to its information bound n*(H(d)+d) bits. The package
// reads and writes PEFT adapter directories and full fine-tuning residuals
// against a base model; it imports nothing from the network side of expertd.
package compress
