// Package codec measures the codec through the real CLI, and whether it
// uses the cores: `expertd compress` of a 34M-parameter F32 LoRA adapter
// against the ComPEFT reference's sparsify+quantize in torch on one
// thread, and `expertd decompress` of its container to tmpfs, each with
// all cores and with GOMAXPROCS=1, in wall and CPU time.
//
// TestCodec builds the binary, writes the adapter to tmpfs and prints its
// table next to the goals, and writes it to DIR/codec.md. It runs only
// when given a directory, and is skipped otherwise (as in CI):
//
//	go test ./deploy/bench/codec -run TestCodec -v -count=1 -args -out DIR [-runs N]
//
// The torch figure needs Debian's python3-torch and python3-numpy
// (/usr/bin/python3); without them the table says it was not measured.
//
// TestRefitCLI times `expertd compress` with and without --refit on LoRA
// adapters (the python fixture, synthetic ones, any given) and writes
// DIR/refit-cli.md; -bin times given binaries in turn, for a before and
// after:
//
//	go test ./deploy/bench/codec -run TestRefitCLI -v -count=1 -args -out DIR [-runs N] [-adapters DIR,...] [-bin EXPERTD,...]
package codec
