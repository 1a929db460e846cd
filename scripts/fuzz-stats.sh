#!/usr/bin/env bash
# Run every fuzz target of the tree for the same time and print, as a markdown table with the date and
# the machine, how many inputs each executed and what it found: the command behind the fuzzing figures
# of docs/testing.md (exec counts depend on the time given and the machine, so they are printed with both).
#
# Usage: scripts/fuzz-stats.sh [SECONDS_PER_TARGET] [NAME_REGEXP]   (defaults: 60, every target)
#
# Targets are found by their `func FuzzX(` in *_test.go, so a new one is included. Each runs alone, with
# go's default of one worker per CPU and -fuzzminimizetime 2s; new interesting inputs go to the Go build
# cache, a crasher to the package's testdata/fuzz/NAME/ (the script then exits 1 and names it).
set -euo pipefail
secs=${1:-60}
only=${2:-.}
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
echo "# Fuzzing, ${secs} s per target"
echo
echo "Written by \`scripts/fuzz-stats.sh $secs\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) at start."
echo
echo "| package | target | execs | execs/s | new inputs | result |"
echo "|---|---|---:|---:|---:|---|"
failed=()
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	[[ $name =~ $only ]] || continue
	if go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "${secs}s" -fuzzminimizetime 2s >"$log" 2>&1; then
		result=ok
	else
		result="FAILED: $(grep -m1 -o 'testdata/fuzz/[^ ]*' "$log" || tail -n 1 "$log")"
		failed+=("$pkg $name")
	fi
	# The last progress line: "fuzz: elapsed: 60s, execs: 1234567 (20576/sec), new interesting: 3 (total: 41)"
	last=$(grep '^fuzz: elapsed:' "$log" | tail -n 1)
	execs=$(sed -n 's/.*execs: \([0-9]*\).*/\1/p' <<<"$last")
	elapsed=$(sed -n 's/^fuzz: elapsed: \([0-9]*\)s.*/\1/p' <<<"$last")
	rate=$((${execs:-0} / (${elapsed:-0} > 0 ? ${elapsed:-1} : 1)))
	new=$(sed -n 's/.*new interesting: \([0-9]*\).*/\1/p' <<<"$last")
	echo "| ${pkg#./} | $name | ${execs:-?} | ${rate:-?} | ${new:-?} | $result |"
done < <(grep -rEo '^func Fuzz[A-Za-z0-9_]*' --include='*_test.go' . | sed 's/func //' | sed 's#^\./##' | sort)
if ((${#failed[@]})); then
	echo "fuzz-stats.sh: failed: ${failed[*]}" >&2
	exit 1
fi
