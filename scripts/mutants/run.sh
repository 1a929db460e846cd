#!/usr/bin/env bash
# The mutation pass of issue 19: apply each mutant of scripts/mutants/mutants.txt (a deliberate bug
# breaking one invariant the README or docs promise) to a scratch copy of the tree, run the tests that
# should catch it, and print a markdown table (mutant | invariant | result | killed by | seconds) with
# the date and the machine. Exits 1 if a mutant not marked equivalent survives, or if a mutant no
# longer applies or does not build (the list needs updating).
#
# Usage: scripts/mutants/run.sh [NAME...]        (default: every mutant of the list)
#   MUTANT_TIMEOUT=300  seconds per mutant's go test (a hang past it counts as killed: "timeout")
#   BASELINE=1          first run each mutant's tests on the unmutated copy: they must pass
#   MUTANT_LOGS=DIR     keep each mutant's go test output in DIR/NAME.log
#
# The working tree is never modified: its files (tracked and untracked, not ignored) are copied to
# /tmp/expertd-mutants.$UID/tree, which is removed on exit, even on ^C; an interrupted run leaves no
# mutated source anywhere. The path is fixed so the Go build cache, which keys compiled packages by
# their directory, serves every run after the first; a lock keeps two runs from sharing it. Tests run
# one package at a time (go test -p 1) under nice -n 19: the machine is shared.
set -euo pipefail
# Bash reads a script as it runs it: main is parsed whole first, so editing this file during a run is safe.
main() {
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
list=$here/mutants.txt
timeout=${MUTANT_TIMEOUT:-300}
work=${TMPDIR:-/tmp}/expertd-mutants.$(id -u)
mkdir -p "$work"
exec 9>"$work/lock"
if ! flock -n 9; then
	echo "run.sh: another mutation pass holds $work/lock" >&2
	exit 2
fi
tree=$work/tree
child=
# cleanup stops the go test running (timeout passes the signal on to it) and removes the copy.
cleanup() {
	if [[ -n $child ]] && kill -TERM "$child" 2>/dev/null; then
		wait "$child" || true
	fi
	rm -rf "$tree" "$work/mutate" "$work/orig" "$work/log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The tree as it is now, uncommitted changes included, without .git.
rm -rf "$tree"
mkdir -p "$tree"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$tree"
(cd "$tree" && go build -o "$work/mutate" ./scripts/mutants/mutate)
list=$tree/scripts/mutants/mutants.txt # the copy: editing the list during a run changes nothing

declare -A want=()
for n in "$@"; do want[$n]=1; done
mapfile -t records < <("$work/mutate" list "$list")
if (($# > 0)); then
	for n in "$@"; do
		printf '%s\n' "${records[@]}" | cut -d $'\x1f' -f1 | grep -qx -- "$n" || { echo "run.sh: no mutant $n in $list" >&2; exit 2; }
	done
fi

# gotest PKGS RUN LOG: the tests of a mutant, in the scratch tree.
gotest() {
	local pkgs=$1 run=$2 log=$3
	# shellcheck disable=SC2086 # pkgs is a space-separated list
	# In the background, so that a signal reaches the trap at once, not when go test ends.
	(cd "$tree" && exec timeout -k 30 $((timeout + 60)) nice -n 19 go test -p 1 -count=1 -timeout "${timeout}s" -run "$run" $pkgs) >"$log" 2>&1 &
	child=$!
	wait "$child"
}

# failedTests LOG: the top-level tests that failed, and the one that hung if the run timed out.
failedTests() {
	local log=$1 names hung
	local all
	all=$(sed -n 's/^--- FAIL: \([^/ ]*\).*/\1/p' "$log" | sort -u)
	names=$(head -n 4 <<<"$all" | paste -sd, -)
	names=${names//,/, }
	if (($(grep -c . <<<"$all") > 4)); then
		names+=" and $(($(grep -c . <<<"$all") - 4)) more"
	fi
	if grep -q '^panic: test timed out' "$log"; then
		hung=$(sed -n '/running tests:/,/^$/{s/^[[:space:]]*\(Test[^ ]*\) .*/\1/p}' "$log" | paste -sd, -)
		echo "${names:+$names; }timeout${hung:+ in $hung}"
	elif [[ -n $names ]]; then
		echo "$names"
	elif grep -q '^panic:' "$log"; then
		echo "panic: $(grep -m1 '^panic:' "$log" | cut -c8-80)"
	else
		echo "exit status, no test named: $(grep -m1 -E 'FAIL|error' "$log" | cut -c1-80)"
	fi
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1) || true
echo "# Mutation pass"
echo
echo "Written by \`scripts/mutants/run.sh${*:+ $*}\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(cd "$repo" && git rev-parse --short HEAD)$(cd "$repo" && [[ -z $(git status --porcelain) ]] || echo ' (with uncommitted changes)')."
echo "$(go version | sed 's/^go version //'); $(uname -sr), $(getconf _NPROCESSORS_ONLN) CPUs${cpu:+ ($cpu)}; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) at start."
echo "Each mutant: \`nice -n 19 go test -p 1 -count=1 -timeout ${timeout}s -run RUN PKGS\` on a scratch copy."
echo

log=$work/log
if [[ ${BASELINE:-} == 1 ]]; then
	declare -A seen=()
	for r in "${records[@]}"; do
		IFS=$'\x1f' read -r name file pkgs run equiv breaks <<<"$r"
		((${#want[@]} == 0)) || [[ -n ${want[$name]:-} ]] || continue
		[[ -z ${seen["$pkgs $run"]:-} ]] || continue
		seen["$pkgs $run"]=1
		start=$(date +%s)
		if gotest "$pkgs" "$run" "$log" && ! grep -q 'no tests to run' "$log"; then
			echo "baseline ok ($(($(date +%s) - start)) s): $pkgs -run '$run'" >&2
		else
			echo "run.sh: baseline fails or runs no test, so no mutant of it can be judged: $pkgs -run '$run'" >&2
			tail -n 30 "$log" >&2
			exit 1
		fi
	done
fi

echo "| mutant | invariant it breaks | result | killed by | s |"
echo "|---|---|---|---|---:|"
total=0 killed=0 survived=0 equivalent=0 broken=0
pass_start=$(date +%s)
failed=()
for r in "${records[@]}"; do
	IFS=$'\x1f' read -r name file pkgs run equiv breaks <<<"$r"
	((${#want[@]} == 0)) || [[ -n ${want[$name]:-} ]] || continue
	total=$((total + 1))
	cp "$tree/$file" "$work/orig"
	start=$(date +%s)
	by=
	if ! "$work/mutate" apply "$list" "$name" "$tree" 2>"$log"; then
		result="STALE"
		by=$(cut -c1-120 "$log")
	elif gotest "$pkgs" "$run" "$log"; then
		if grep -q 'no tests to run' "$log"; then
			result="NO TESTS"
			by="-run '$run' matches no test"
		elif [[ -n $equiv ]]; then
			result="survived (equivalent)"
			by="equivalent: $equiv"
		else
			result="SURVIVED"
		fi
	elif grep -qE '\[(build|setup) failed\]|^# ' "$log" && ! grep -q -- '--- FAIL' "$log"; then
		result="DOES NOT BUILD"
		by=$(grep -m1 -E '\.go:[0-9]+:[0-9]+: ' "$log" | sed "s|$tree/||" | cut -c1-120)
	else
		result="killed"
		by=$(failedTests "$log")
	fi
	cp "$work/orig" "$tree/$file"
	secs=$(($(date +%s) - start))
	if [[ -n ${MUTANT_LOGS:-} ]]; then
		mkdir -p "$MUTANT_LOGS"
		cp "$log" "$MUTANT_LOGS/$name.log"
	fi
	case $result in
	killed) killed=$((killed + 1)) ;;
	"survived (equivalent)") equivalent=$((equivalent + 1)) ;;
	SURVIVED) survived=$((survived + 1)) failed+=("$name") ;;
	*) broken=$((broken + 1)) failed+=("$name") ;;
	esac
	echo "| $name | $breaks | $result | ${by//|/\\|} | $secs |"
done
echo
echo "$total mutants: $killed killed, $survived survived, $equivalent equivalent (survive by design), $broken stale, not building or testing nothing; $(($(date +%s) - pass_start)) s in all."
if ((${#failed[@]})); then
	echo
	echo "Not killed, and not marked equivalent: ${failed[*]}"
	exit 1
fi
}

main "$@"
