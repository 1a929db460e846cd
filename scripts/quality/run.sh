#!/usr/bin/env bash
# Rerun the merge and --refit measurements of docs/quality.md and print their tables.
#
#   scripts/quality/run.sh QUALITY_DIR PEFT_FIXTURES_DIR [WORK_DIR] [PARTS]
#
# QUALITY_DIR holds model/ and heldout_*.txt (the quality model); PEFT_FIXTURES_DIR holds
# python-lora-r16 and prose-lora-r64 (the fixtures the team trained). The c expert (LoRA r16) is
# trained here with train_lora.py if WORK_DIR/experts/c-lora-r16 is missing (seed 1, ~8 CPU
# minutes). PARTS is a comma list of experts,merge,sweep,refit,speed (default all).
# Needs Debian's python3-numpy python3-torch libopenblas0-pthread and /usr/bin/python3.
# Not part of CI: it takes about an hour on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
quality=${1:?QUALITY_DIR}
peft=${2:?PEFT_FIXTURES_DIR}
work=${3:-/tmp/expertd-quality}
parts=${4:-experts,merge,sweep,refit,speed}
mkdir -p "$work/experts"
(cd "$here/../.." && go build -o "$work/expertd" ./cmd/expertd)
if [ ! -f "$work/experts/c-lora-r16/adapter_model.safetensors" ]; then
	/usr/bin/python3 "$here/train_lora.py" "$quality" c "$work/experts/c-lora-r16" --steps 120 --seed 1 >&2
fi
cd "$here/../.."
/usr/bin/python3 "$here/merge_refit.py" --expertd "$work/expertd" --fixtures "$quality" --work "$work" \
	--expert python="$peft/python-lora-r16" --expert c="$work/experts/c-lora-r16" --expert prose="$peft/prose-lora-r64" \
	--part "$parts"
