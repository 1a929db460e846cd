// Package compress implements the ComPEFT codec (Yadav et al., 2023) and its
// container file format (.cpeft).
//
// Compression keeps the top-k magnitudes of an expert's task vector, replaces
// each by its sign times one scale and drops the rest; the resulting ternary
// vector is entropy coded (Golomb-coded gaps plus one sign bit per kept
// element) close to its information bound n*(H(d)+d) bits. The package
// reads and writes PEFT adapter directories and full fine-tuning residuals
// against a base model; it imports nothing from the network side of expertd.
//
// Containers come from peers and are decoded as hostile: the header is
// validated field by field (the only config file it may restore is
// adapter_config.json, or config.json for a residual), Expand checks the
// output it declares against a limit and the free space before writing
// anything (OutputBytes, CheckOutput; ParamsOutputBytes for what an
// announcement says), and tensors are decoded in chunks, in memory that
// does not grow with them.
package compress
