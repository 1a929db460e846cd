package compress

// MergeMemory estimates the bytes Merge allocates beyond its inputs for in
// and o, so that a caller can refuse a merge its memory cannot hold: the
// merged tensors (float32) and the float64 work of the largest LoRA
// module or tensor, merged one at a time: for TIES about 40 bytes per
// element of the dense update (sums and counts per sign, the trim's keys
// and marks, the product and the randomized SVD's inputs), for task
// arithmetic 8 bytes per element of the stacked factors. Inputs Merge
// would refuse give 0 and Merge's error.
func MergeMemory(in []MergeInput, o MergeOptions) (int64, error) {
	compressed := false
	for _, x := range in {
		compressed = compressed || x.Source != nil && x.Source.Density > 0
	}
	o, err := o.withDefaults(len(in), compressed)
	if err != nil {
		return 0, err
	}
	in = sortedInputs(in)
	if err := checkMergeable(in); err != nil {
		return 0, err
	}
	first := in[0].Source
	var out, work int64
	if first.PeftType != PeftTypeLoRA {
		for _, t := range first.Tensors {
			n := int64(len(t.Tau))
			out += 4 * n
			work = max(work, pickInt(o.Method == MergeTIES, 40*n, 8*n))
		}
		return out + work, nil
	}
	pairs, _, err := loraPairs(first.Tensors)
	if err != nil {
		return 0, err
	}
	var rsum int64 // the inputs' ranks: task arithmetic stacks their factors
	for _, x := range in {
		p, _, _ := loraPairs(x.Source.Tensors)
		rsum += int64(p[0].R)
	}
	rank := int64(o.Rank)
	if rank == 0 {
		rank = rsum
	}
	for _, p := range pairs {
		out += 4 * rank * int64(p.In+p.Out)
		dense := int64(p.Out) * int64(p.In)
		stacked := 8 * max(rank, rsum) * int64(p.In+p.Out)
		work = max(work, pickInt(o.Method == MergeTIES, 40*dense+stacked, 2*stacked))
	}
	return out + work, nil
}

func pickInt(cond bool, yes, no int64) int64 {
	if cond {
		return yes
	}
	return no
}
