#!/usr/bin/env bash
# Run the 50-node swarm benchmark (deploy/bench/swarm, TestSwarm) N times and print, with the date and the
# machine, what each run measured and the range over the runs: the publisher's bytes sent (x the expert)
# and when the last node held the expert: the command behind any "over N runs" range quoted for the swarm
# of docs/bench (one run of it is there). One run takes about a minute of real time on 2 cores.
#
# Usage: scripts/swarm-runs.sh [N]   (default 10)
set -euo pipefail
runs=${1:-10}
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
echo "Written by \`scripts/swarm-runs.sh $runs\` on $(date -u '+%Y-%m-%d %H:%M UTC') at $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
echo "$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}."
echo
echo "| run | publisher's bytes sent (x the expert) | last node holds it (s from publish) |"
echo "|---:|---:|---:|"
for i in $(seq "$runs"); do
	mkdir -p "$tmp/$i"
	go test ./deploy/bench/swarm -run '^TestSwarm$' -count=1 -timeout 30m -args -out "$tmp/$i" >"$tmp/$i.log" 2>&1 ||
		{ echo "swarm-runs.sh: run $i failed:" >&2; tail -n 20 "$tmp/$i.log" >&2; exit 1; }
	md=$tmp/$i/swarm.md
	# "| publisher's bytes sent (x the expert) | 3.64 x | ..." and "| all 49 nodes hold ... | 14.97 s / 19.34 s | ..."
	x=$(awk -F'|' '/publisher.s bytes sent/ { gsub(/[ x]/, "", $3); print $3 }' "$md")
	last=$(awk -F'|' '/nodes hold the expert/ { split($3, a, "/"); gsub(/[ s]/, "", a[2]); print a[2] }' "$md")
	echo "| $i | $x | $last |"
	echo "$x $last" >>"$tmp/all"
done
awk '{ if (NR == 1 || $1 < x0) x0 = $1; if ($1 > x1) x1 = $1; if (NR == 1 || $2 < t0) t0 = $2; if ($2 > t1) t1 = $2 }
	END { printf "\nOver %d runs the publisher sent %s-%s x the expert and the last node held it after %s-%s s.\n", NR, x0, x1, t0, t1 }' "$tmp/all"
