#!/usr/bin/env bash
# Measure the codec and print the table of docs/codec.md's "Speed and size" section with the date, the
# machine and its load: compress and decompress throughput (one core, -cpu 1) next to their targets,
# the real fixtures' bits/param and payload against the entropy bound, and the payload of an i.i.d.
# Gaussian vector against n*(H(d)+d) at seven densities (TestSizeNearBound, deterministic).
#
# Usage: scripts/codec-bench.sh [BENCHTIME]   (default 5x)
set -euo pipefail
benchtime=${1:-5x}
cd "$(dirname "$0")/.."

bench=$(go test ./compress -run '^$' -bench 'Compress40M|Decompress40M|Fixtures' -benchtime "$benchtime" -cpu 1)
bound=$(go test ./compress -run '^TestSizeNearBound$' -count=1 -v)

# field NAME UNIT: the value before UNIT on the benchmark line of NAME.
field() {
	awk -v name="$1" -v unit="$2" '$1 == name { for (i = 2; i <= NF; i++) if ($i == unit) print $(i-1) }' <<<"$bench"
}
mbps() { printf '%.0f MB/s' "$(field "$1" MB/s)"; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
echo "Written by \`scripts/codec-bench.sh $benchtime\` on $(date -u '+%Y-%m-%d %H:%M UTC'): one core (\`-cpu 1\`),"
echo "$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) at the end."
echo
echo "| benchmark | measured | target |"
echo "|---|---|---|"
echo "| compress, 40M-parameter synthetic F32 adapter, d=0.2 | $(mbps BenchmarkCompress40M) of F32 input | >= 300 MB/s |"
echo "| decompress, same, dense F32 output | $(mbps BenchmarkDecompress40M) | >= 1 GB/s |"
for f in python-lora-r16 python-lora-r16-bf16 c-ia3; do
	echo "| compress $f | $(mbps "BenchmarkFixtures/compress/$f"); $(field "BenchmarkFixtures/compress/$f" bits/param) bits/param, payload $(field "BenchmarkFixtures/compress/$f" x_bound) x the bound | |"
	echo "| decompress $f | $(mbps "BenchmarkFixtures/decompress/$f") | |"
done
ratios=$(sed -n 's/.*ratio \([0-9.]*\)$/\1/p' <<<"$bound" | paste -sd/ | sed 's#/# / #g')
densities=$(sed -n 's/.*d=\([0-9.]*\) payload.*/\1/p' <<<"$bound" | paste -sd/ | sed 's#/# / #g')
echo "| payload vs n*(H(d)+d), i.i.d. Gaussian, 1M params, d = $densities | $ratios | <= 1.03 |"
