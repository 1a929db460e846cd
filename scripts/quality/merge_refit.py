"""Measure `expertd merge` and `expertd compress --refit` on the quality model; print docs/quality.md tables.

Usage: merge_refit.py --expertd BIN --fixtures QUALITY_DIR --work DIR \
           --expert python=DIR --expert c=DIR --expert prose=DIR [--part experts,merge,sweep,refit,speed]

QUALITY_DIR holds model/ and heldout_*.txt (eval_bpb.py's FIXTURES_DIR). Each --expert is a LoRA
adapter directory fine-tuned on that domain (scripts/quality/run.sh trains the missing ones). Every
container and adapter is made by running BIN; bits per byte come from eval_bpb.py's code (96
windows of 256 bytes, seed 7). Results are cached in WORK/bpb.json by adapter content, so a rerun
only evaluates what changed. Needs python3-torch and python3-numpy; not part of CI.
"""
import argparse, datetime, hashlib, json, os, platform, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_bpb  # noqa: E402
import st  # noqa: E402

DOMAINS = ["python", "c", "prose"]


class Bench:
    def __init__(self, args):
        self.bin, self.fx, self.work = args.expertd, args.fixtures, args.work
        self.experts = dict(e.split("=", 1) for e in args.expert)
        os.makedirs(self.work, exist_ok=True)
        self.cache_path = os.path.join(self.work, "bpb.json")
        self.cache = json.load(open(self.cache_path)) if os.path.exists(self.cache_path) else {}
        self.model = None
        self.data = {}

    def run(self, *args):
        r = subprocess.run([self.bin, *args], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"expertd {' '.join(args)}: {r.stderr}")
        return r.stderr

    def path(self, *parts):
        p = os.path.join(self.work, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def compress(self, src, name, *flags):
        """Compress src to WORK/NAME.cpeft and decompress it to WORK/NAME/; return (dir, bytes)."""
        f = self.path(name + ".cpeft")
        if not os.path.exists(f):
            self.run("compress", src, "-o", f, *flags)
        return self.expand(f), os.path.getsize(f)

    def expand(self, f):
        d = f[:-len(".cpeft")]
        if not os.path.exists(os.path.join(d, "adapter_model.safetensors")):
            self.run("decompress", f, "-o", d)
        return d

    def merge(self, inputs, name, *flags, uncompressed=False):
        """Merge inputs into WORK/NAME (a dir) and return (dir, container bytes or 0)."""
        if uncompressed:
            d = self.path(name)
            if not os.path.exists(os.path.join(d, "adapter_model.safetensors")):
                self.run("merge", *inputs, "-o", d, "--uncompressed", *flags)
            return d, 0
        f = self.path(name + ".cpeft")
        if not os.path.exists(f):
            self.run("merge", *inputs, "-o", f, *flags)
        return self.expand(f), os.path.getsize(f)

    def bpb(self, adapter, dom):
        """bpb of the base with adapter (None: base alone) on dom's test half, cached by content."""
        h = "base"
        if adapter:
            s = hashlib.sha256()
            for fn in ("adapter_config.json", "adapter_model.safetensors"):
                s.update(open(os.path.join(adapter, fn), "rb").read())
            h = s.hexdigest()
        key = f"{h}:{dom}"
        if key not in self.cache:
            if self.model is None:
                self.model = eval_bpb.load_base(self.fx)
            cfg, w = self.model
            if dom not in self.data:
                self.data[dom] = eval_bpb.heldout(self.fx, dom)
            ww = eval_bpb.merge(w, adapter) if adapter else w
            self.cache[key] = eval_bpb.bpb(cfg, ww, self.data[dom])
            self.save()
        return self.cache[key]

    def save(self):
        """Merge the cache into the file (another run may share it) and replace it atomically."""
        if os.path.exists(self.cache_path):
            self.cache = {**json.load(open(self.cache_path)), **self.cache}
        tmp = self.cache_path + f".{os.getpid()}"
        json.dump(self.cache, open(tmp, "w"), indent=0)
        os.replace(tmp, self.cache_path)

    def share(self, adapter, dom):
        """Share of the own expert's gain kept on dom: (base - x) / (base - expert)."""
        base, exp = self.bpb(None, dom), self.bpb(self.experts[dom], dom)
        return (base - self.bpb(adapter, dom)) / (base - exp)

    def compressed_experts(self):
        return {d: self.compress(self.experts[d], f"experts/{d}-d0.2")[0] for d in DOMAINS}

    def cpeft(self, dom):
        return self.path(f"experts/{dom}-d0.2.cpeft")


def pct(x):
    return f"{100 * x:.0f}%"


def experts_table(b):
    print("### Each expert alone (own domain)\n")
    print("| expert | params | base bpb | expert bpb | compressed d=0.2 bpb | bytes | gain kept |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    cx = b.compressed_experts()
    for d in DOMAINS:
        size = os.path.getsize(b.cpeft(d))
        params = sum(a.size for a, _ in st.load(os.path.join(b.experts[d], "adapter_model.safetensors"))[0].values())
        print(f"| {d} ({os.path.basename(b.experts[d])}) | {params} | {b.bpb(None, d):.4f} | {b.bpb(b.experts[d], d):.4f} | "
              f"{b.bpb(cx[d], d):.4f} | {size} | {pct(b.share(cx[d], d))} |")
    print()
    print("### Each expert on every domain (bpb; gain kept relative to the domain's own expert)\n")
    print("| adapter | " + " | ".join(DOMAINS) + " |")
    print("|---|" + "---:|" * len(DOMAINS))
    print("| base | " + " | ".join(f"{b.bpb(None, d):.4f}" for d in DOMAINS) + " |")
    for e in DOMAINS:
        for label, a in ((e, b.experts[e]), (e + " d=0.2", cx[e])):
            print(f"| {label} | " + " | ".join(f"{b.bpb(a, d):.4f} ({pct(b.share(a, d))})" for d in DOMAINS) + " |")
    print()


def merge_row(b, label, adapter, size):
    shares = [b.share(adapter, d) for d in DOMAINS]
    cells = " | ".join(f"{b.bpb(adapter, d):.4f} ({pct(s)})" for d, s in zip(DOMAINS, shares))
    print(f"| {label} | {cells} | {pct(sum(shares) / len(shares))} | {size or 'uncompressed'} |")


def merge_header(first):
    print(f"| {first} | " + " | ".join(DOMAINS) + " | mean kept | bytes |")
    print("|---|" + "---:|" * (len(DOMAINS) + 2))


def merge_table(b):
    b.compressed_experts()
    raw = [b.experts[d] for d in DOMAINS]
    comp = [b.cpeft(d) for d in DOMAINS]
    print("### Merging the three experts: each method x each domain\n")
    print("bpb on each domain's test half (share of that domain's own expert's gain kept). Inputs: the")
    print("uncompressed experts or their d=0.2 containers; output: uncompressed (F32 factors) or the merged")
    print("container, both with `expertd merge`'s defaults: rank = the sum of the experts' ranks (16+16+64 = 96);")
    print("ta lambda 0.4, or 1.0 when the inputs are containers; ties lambda 1, trim 0.2; density 0.2 with --refit.\n")
    merge_header("method, inputs -> output")
    for method in ("ta", "ties"):
        for inp_label, inputs in (("uncompressed", raw), ("compressed", comp)):
            d, _ = b.merge(inputs, f"merge/{method}-{inp_label}-u", "--method", method, uncompressed=True)
            merge_row(b, f"{method}, {inp_label} -> uncompressed", d, 0)
            d, size = b.merge(inputs, f"merge/{method}-{inp_label}-c", "--method", method)
            merge_row(b, f"{method}, {inp_label} -> container", d, size)
    print()


SWEEP = [
    # (label, flags): all on the compressed experts, into a container at density 0.2 unless said.
    ("ta lambda 0.4, no refit", ["--method", "ta", "--lambda", "0.4", "--refit=false"]),
    ("ta lambda 0.3, no refit", ["--method", "ta", "--lambda", "0.3", "--refit=false"]),
    ("ta lambda 0.6, no refit", ["--method", "ta", "--lambda", "0.6", "--refit=false"]),
    ("ta lambda 0.8, no refit", ["--method", "ta", "--lambda", "0.8", "--refit=false"]),
    ("ta lambda 1.0, no refit", ["--method", "ta", "--lambda", "1.0", "--refit=false"]),
    ("ta lambda 1.3, no refit", ["--method", "ta", "--lambda", "1.3", "--refit=false"]),
    ("ties lambda 0.7, no refit", ["--method", "ties", "--lambda", "0.7", "--refit=false"]),
    ("ties lambda 1.0, no refit", ["--method", "ties", "--lambda", "1.0", "--refit=false"]),
    ("ties lambda 1.5, no refit", ["--method", "ties", "--lambda", "1.5", "--refit=false"]),
    ("ta lambda 0.4 rank 16, no refit", ["--method", "ta", "--lambda", "0.4", "--rank", "16", "--refit=false"]),
    ("ta lambda 0.4 rank 32, no refit", ["--method", "ta", "--lambda", "0.4", "--rank", "32", "--refit=false"]),
    ("ta lambda 1.0 rank 32, no refit", ["--method", "ta", "--lambda", "1.0", "--rank", "32", "--refit=false"]),
    ("ta lambda 0.4 density 0.5, no refit", ["--method", "ta", "--lambda", "0.4", "--density", "0.5", "--refit=false"]),
    ("ta lambda 1.0 density 0.5, no refit", ["--method", "ta", "--lambda", "1.0", "--density", "0.5", "--refit=false"]),
]


def sweep_table(b):
    b.compressed_experts()
    comp = [b.cpeft(d) for d in DOMAINS]
    print("### Choosing the defaults (inputs: the d=0.2 containers; output: a container)\n")
    merge_header("variant (default: ta, lambda 1.0, rank 96, density 0.2, refit)")
    d, size = b.merge(comp, "merge/ta-compressed-c", "--method", "ta")
    merge_row(b, "default", d, size)
    for label, flags in SWEEP:
        d, size = b.merge(comp, "sweep/" + label.replace(" ", "-"), *flags)
        merge_row(b, label, d, size)
    print()


def refit_table(b):
    print("### --refit against plain compress, same density (own domain)\n")
    print("| expert | density | plain bytes | refit bytes | bytes ratio | plain bpb | refit bpb | plain kept | refit kept |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in DOMAINS:
        for dens in ("0.1", "0.2", "0.3"):
            p, ps = b.compress(b.experts[d], f"refit/{d}-d{dens}-plain", "--density", dens)
            r, rs = b.compress(b.experts[d], f"refit/{d}-d{dens}-refit", "--density", dens, "--refit")
            print(f"| {d} | {dens} | {ps} | {rs} | {rs / ps:.4f} | {b.bpb(p, d):.4f} | {b.bpb(r, d):.4f} | "
                  f"{pct(b.share(p, d))} | {pct(b.share(r, d))} |")
    print()
    print("Refit variants at density 0.2 (gain kept on the own domain):\n")
    variants = [("rounds 2, stored factors", ["--refit-rounds", "2", "--refit-init", "factors"]),
                ("rounds 0, balanced", ["--refit-rounds", "0"]),
                ("rounds 2, balanced", ["--refit-rounds", "2"]),
                ("rounds 2, balanced, scope tensor (+4% bytes)", ["--refit-rounds", "2", "--scope", "tensor"])]
    print("| variant | " + " | ".join(DOMAINS) + " |")
    print("|---|" + "---:|" * len(DOMAINS))
    for label, flags in variants:
        cells = []
        for d in DOMAINS:
            a, _ = b.compress(b.experts[d], f"refit/{d}-d0.2-" + label.split(" (")[0].replace(" ", "").replace(",", "-"), "--refit", *flags)
            cells.append(pct(b.share(a, d)))
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def speed_table(b, extra):
    print("### Speed: `expertd compress` wall time, plain and --refit (best of 3, density 0.2)\n")
    print("| adapter | source MB | plain s | plain MB/s | refit s | refit MB/s | refit / plain time |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, src in [(d, b.experts[d]) for d in DOMAINS] + extra:
        mb = os.path.getsize(os.path.join(src, "adapter_model.safetensors")) / 1e6
        times = {}
        for mode, flags in (("plain", []), ("refit", ["--refit"])):
            out = b.path(f"speed/{name}-{mode}.cpeft")
            best = None
            for _ in range(3):
                t0 = time.perf_counter()
                b.run("compress", src, "-o", out, *flags)
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            times[mode] = best
        print(f"| {name} | {mb:.1f} | {times['plain']:.3f} | {mb / times['plain']:.0f} | {times['refit']:.3f} | "
              f"{mb / times['refit']:.0f} | {times['refit'] / times['plain']:.1f}x |")
    print()


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores ({cpu}), "
            f"load average {load:.1f} at start, torch {torch.__version__}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expertd", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--expert", action="append", required=True)
    ap.add_argument("--speed-extra", action="append", default=[], help="NAME=DIR: more adapters for the speed table")
    ap.add_argument("--part", default="experts,merge,sweep,refit,speed")
    a = ap.parse_args()
    b = Bench(a)
    ver = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    print(f"Measured {machine()}; expertd at {ver}.\n")
    parts = a.part.split(",")
    if "experts" in parts:
        experts_table(b)
    if "merge" in parts:
        merge_table(b)
    if "sweep" in parts:
        sweep_table(b)
    if "refit" in parts:
        refit_table(b)
    if "speed" in parts:
        speed_table(b, [tuple(e.split("=", 1)) for e in a.speed_extra])


if __name__ == "__main__":
    main()
