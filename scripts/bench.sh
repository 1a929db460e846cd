#!/usr/bin/env bash
# Run the benchmarks of issue #7 and gather their reports in one README: the fetch-vs-RTT sweep
# (sweep.md, fetch-vs-rtt.svg), the swarm and the memory benchmarks (swarm.md, memory.md), the
# NAT lab of issue #20 (natlab.md; it needs root, else it is skipped) and the codec through the CLI
# of issue 17 (codec.md). Each is a go test that writes its fragment to the directory given by -out.
# A package not in the tree is skipped; one that fails is left out of the README and makes the
# script exit 1 after writing it. Given NAMEs (sweep, memory, swarm, natlab, codec), only those
# run; the README still gathers every fragment in OUT_DIR.
#
# Usage: scripts/bench.sh [OUT_DIR [NAME...]]    (OUT_DIR default: docs/bench)
set -euo pipefail
mkdir -p "${1:-docs/bench}"
out=$(cd "${1:-docs/bench}" && pwd) # absolute: go test runs in each package's directory
shift || true
only=" $* "
cd "$(dirname "$0")/.."

failed=()
for run in bench/sweep:TestSweep bench/memory:TestMemory bench/swarm:TestSwarm natlab:TestNATLab bench/codec:TestCodec; do
	dir=deploy/${run%%:*} test=${run#*:}
	pkg=${dir##*/}
	[[ $only == "  " || $only == *" $pkg "* ]] || continue
	rm -f "$out/$pkg.md" # no stale fragment in the README
	if [[ ! -d $dir ]]; then
		echo "bench.sh: no $dir, skipped" >&2
	elif ! go test "./$dir" -run "^$test\$" -count=1 -timeout 30m -args -out "$out"; then
		failed+=("$pkg")
		rm -f "$out/$pkg.md"
	fi
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
when="$(date -u '+%Y-%m-%d %H:%M UTC')"
machine="$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}."
earlier=""
if [[ $only != "  " && -f $out/README.md ]]; then # the sections not run keep the line that dates them
	earlier=$(sed -n '3,4p' "$out/README.md" | grep -v '^Sections ' || true)
fi
{
	echo "# expertd benchmarks"
	echo
	if [[ -n $earlier ]]; then
		echo "$earlier"
		echo "Sections${only% } re-run by \`scripts/bench.sh\` on $when: $machine"
	else
		echo "Written by \`scripts/bench.sh\` on $when."
		echo "$machine"
	fi
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
