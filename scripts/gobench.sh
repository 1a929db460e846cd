#!/usr/bin/env bash
# Run one `go test` command (a benchmark, or a test that logs what it measured with -v) and print its
# output as a markdown block under the command, the date and the machine: the way a figure in docs/ that
# no other script writes gets its source next to it. Exits with go test's status.
#
# Usage: scripts/gobench.sh GO_TEST_ARGS...
#   e.g. scripts/gobench.sh ./node/store -run '^$' -bench 'Store10MiB' -benchtime 20x
set -euo pipefail
cd "$(dirname "$0")/.."
(($#)) || { sed -n 's/^# \{0,1\}//p' "$0" | sed -n '2,6p' >&2; exit 2; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }
start=$(load)
status=0
out=$(go test "$@" 2>&1) || status=$?
quote() { # each argument as a shell would need it, quoted only when it must be
	local a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./=,:+-]+$ ]]; then printf ' %s' "$a"; else printf " '%s'" "${a//\'/\'\\\'\'}"; fi
	done
}
printf 'Written by `scripts/gobench.sh%s` on %s at %s.\n' "$(quote "$@")" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}; load average $start at start, $(load) at the end."
echo
echo '```'
echo "$out"
echo '```'
exit "$status"
