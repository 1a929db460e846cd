#!/usr/bin/env bash
# Run the benchmarks of issue #7 and gather their reports in one README: the fetch-vs-RTT sweep
# (sweep.md, fetch-vs-rtt.svg), the swarm and the memory benchmarks (swarm.md, memory.md), the
# NAT lab of issue #20 (natlab.md; it needs root, else it is skipped) and the codec through the CLI
# of issue 17 (codec.md). Each is a go test that writes its fragment to the directory given by -out.
# A package not in the tree is skipped; one that fails is left out of the README and makes the
# script exit 1 after writing it. Each fragment run gets a last line with the date and the machine,
# so the README says when and where each section ran even when they ran apart. Given NAMEs (sweep,
# memory, swarm, natlab, codec), only those run; the README still gathers every fragment in OUT_DIR
# (a NAME that is none of them, such as `none`, only gathers).
#
# Usage: scripts/bench.sh [OUT_DIR [NAME...]]    (OUT_DIR default: docs/bench)
set -euo pipefail
mkdir -p "${1:-docs/bench}"
out=$(cd "${1:-docs/bench}" && pwd) # absolute: go test runs in each package's directory
shift || true
only=" $* "
cd "$(dirname "$0")/.."

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
machine="$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}"

failed=()
for run in bench/sweep:TestSweep bench/memory:TestMemory bench/swarm:TestSwarm natlab:TestNATLab bench/codec:TestCodec; do
	dir=deploy/${run%%:*} test=${run#*:}
	pkg=${dir##*/}
	[[ $only == "  " || $only == *" $pkg "* ]] || continue
	rm -f "$out/$pkg.md" # no stale fragment in the README
	if [[ ! -d $dir ]]; then
		echo "bench.sh: no $dir, skipped" >&2
	elif go test "./$dir" -run "^$test\$" -count=1 -timeout 30m -args -out "$out"; then
		printf '\nRun by `scripts/bench.sh DIR %s` on %s at %s: %s; load average %s at the end.\n' "$pkg" \
			"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
			"$machine" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)" >>"$out/$pkg.md"
	else
		failed+=("$pkg")
		rm -f "$out/$pkg.md"
	fi
done

{
	echo "# expertd benchmarks"
	echo
	echo "Gathered by \`scripts/bench.sh\` (\`make bench\`), which ends every section it runs with the date, the commit"
	echo "and the machine of that run. Other measurements, each with the command that prints it: the latency of"
	echo "one fetch ([latency.md](latency.md)), the codec's speed and size ([../codec.md](../codec.md)), the"
	echo "store's ([../store.md](../store.md)), fuzzing ([../testing.md](../testing.md#fuzzing))."
	for f in sweep swarm memory natlab codec; do
		[[ -f $out/$f.md ]] || continue
		echo
		cat "$out/$f.md"
		if [[ $f == sweep ]]; then # its plot goes with its table
			echo
			echo "![Time to a 10 MiB expert against RTT: expertd and HTTP, fresh and warm, and the floor](fetch-vs-rtt.svg)"
		fi
	done
} >"$out/README.md"
echo "bench.sh: wrote $out/README.md"
if ((${#failed[@]})); then
	echo "bench.sh: failed: ${failed[*]}" >&2
	exit 1
fi
