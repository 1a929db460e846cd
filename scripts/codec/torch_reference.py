"""Time the ComPEFT reference's sparsify+quantize of a PEFT adapter on one torch thread.

Usage: torch_reference.py ADAPTER_DIR DENSITY REPEATS

What is timed is exactly the paper's compression of a task vector already in memory (tau = the
adapter's tensors, flattened in key order and concatenated, as the reference's state_dict_to_vector
does): k = floor(n * density); threshold = the (n - k)-th smallest |tau| (torch kthvalue, as the
reference's topk_values_mask); keep |tau| >= threshold; kept elements become sign(tau) * alpha * std(tau)
(alpha 1, unbiased std). Reading the file and building the vector are not timed.
Prints one line per repeat: "wall_seconds cpu_seconds" (cpu = this process's user + system time).
Needs Debian's python3-torch and python3-numpy.
"""
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quality"))
import st  # noqa: E402  (the team's minimal safetensors reader)


def compeft(tv, density, alpha=1.0):
    n = tv.numel()
    k = n - int(math.floor(n * density))  # the (n-k)-th smallest |tau|, 1-based
    mag = tv.abs()
    kth = mag.kthvalue(k).values
    mask = mag >= kth
    return tv.sign() * mask * (alpha * tv.std())


def main():
    adapter, density, repeats = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    tensors, _ = st.load(os.path.join(adapter, "adapter_model.safetensors"))
    tv = torch.from_numpy(np.concatenate([tensors[k][0].reshape(-1) for k in sorted(tensors)]))
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = compeft(tv, density)
        w1, c1 = time.perf_counter(), time.process_time()
        del out
        print(f"{w1 - w0:.6f} {c1 - c0:.6f}", flush=True)


if __name__ == "__main__":
    main()
