"""Train a LoRA expert on one domain of the quality model and save it as PEFT does.

Usage: train_lora.py FIXTURES_DIR DOMAIN OUT_DIR [--rank 16] [--steps 120] [--seed 1]

FIXTURES_DIR holds model/ and heldout_DOMAIN.txt (see README.md). The expert is trained
on the first half of heldout_DOMAIN.txt only; eval_bpb.py measures on the second half.
LoRA as peft 0.21 sets it up: r, lora_alpha = 2r, targets qkv/proj/fc1/fc2 of every
block, A kaiming-uniform (bound 1/sqrt(in)), B zero, no dropout, no bias. The output is
adapter_config.json + adapter_model.safetensors with peft's key names, loadable by peft
and by expertd. Needs python3-torch and python3-numpy; not part of CI (minutes on 2 cores).
"""
import argparse, json, math, os, sys
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_bpb  # noqa: E402
import st  # noqa: E402

TARGETS = ["qkv", "proj", "fc1", "fc2"]


def module_names(cfg):
    mods = []
    for i in range(cfg["layers"]):
        mods += [f"blocks.{i}.attn.qkv", f"blocks.{i}.attn.proj", f"blocks.{i}.mlp.fc1", f"blocks.{i}.mlp.fc2"]
    return mods


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures")
    ap.add_argument("domain")
    ap.add_argument("out")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    cfg, w = eval_bpb.load_base(a.fixtures)
    data = eval_bpb.heldout(a.fixtures, a.domain, part="train")
    r, alpha = a.rank, 2 * a.rank
    scale = alpha / r
    lora = {}
    for m in module_names(cfg):
        out_f, in_f = w[m + ".weight"].shape
        bound = 1 / math.sqrt(in_f)
        lora[m] = (torch.empty(r, in_f).uniform_(-bound, bound).requires_grad_(), torch.zeros(out_f, r, requires_grad=True))
    params = [p for ab in lora.values() for p in ab]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed)
    for step in range(a.steps):
        ww = dict(w)
        for m, (A, B) in lora.items():
            ww[m + ".weight"] = w[m + ".weight"] + scale * (B @ A)
        ix = torch.randint(len(data) - a.ctx - 1, (a.batch,), generator=g)
        x = torch.stack([data[j:j + a.ctx] for j in ix]).long()
        y = torch.stack([data[j + 1:j + 1 + a.ctx] for j in ix]).long()
        loss = F.cross_entropy(eval_bpb.forward(cfg, ww, x).view(-1, 256), y.view(-1))
        opt.zero_grad()
        loss.backward()
        lr = a.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for pg in opt.param_groups:
            pg["lr"] = lr
        opt.step()
        if step % 50 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item() / math.log(2):.4f} bits/byte", flush=True)
    os.makedirs(a.out, exist_ok=True)
    tensors = {}
    for m, (A, B) in lora.items():
        tensors[f"base_model.model.{m}.lora_A.weight"] = (A.detach().numpy(), "F32")
        tensors[f"base_model.model.{m}.lora_B.weight"] = (B.detach().numpy(), "F32")
    st.save(os.path.join(a.out, "adapter_model.safetensors"), tensors, {"format": "pt"})
    conf = {
        "peft_type": "LORA", "peft_version": "0.21.0", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
        "target_modules": TARGETS, "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
        "rank_pattern": {}, "alpha_pattern": {}, "base_model_name_or_path": None, "task_type": None,
        "inference_mode": True, "init_lora_weights": True, "modules_to_save": None,
    }
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2)


if __name__ == "__main__":
    main()
