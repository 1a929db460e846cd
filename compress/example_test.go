package compress_test

import (
	"fmt"

	"github.com/expertd/expertd/compress"
)

// A node deciding whether to prefetch an expert it only knows from an
// announcement (2^31+1 parameters, dtypes unknown) under the default
// limit: written in its source dtypes it could take more than 16 GiB, as
// BF16 it cannot. A fetched container's header gives the exact figure
// (compress.OutputBytes).
func ExampleCheckOutput() {
	const params = 1<<31 + 1
	fmt.Println(compress.CheckOutput(compress.ParamsOutputBytes(params, "source"), 0))
	fmt.Println(compress.CheckOutput(compress.ParamsOutputBytes(params, "bf16"), 0))
	// Output:
	// declared output over the limit: the expert expands to 16.0 GiB (17179869192 bytes), the limit is 16.0 GiB (17179869184 bytes)
	// <nil>
}
