#!/usr/bin/env bash
# The one GPU command that builds every bundled model: a smoke run of both trainers first (a bug
# fails in seconds, not minutes), then the default story model and the four demo models trained
# side by side on the one GPU. Expects the repo root as the working directory and the output of
# `prepare_data.py all` in .carry/lmdata. Results land in $STAGE/models (the layout of models/);
# with $OUT set (the device machine) they are also packed into $OUT as tar parts of <= 15 MiB.
#
#   bash models/train/device_run.sh            # LM_MINUTES=4 DEMO_SECONDS=55 by default
set -uo pipefail
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LM_MINUTES=${LM_MINUTES:-4}
DEMO_SECONDS=${DEMO_SECONDS:-55}
LM_NAME=${LM_NAME:-mamba-tinystories-9m}
STAGE=${STAGE:-/tmp/mambascope-train}
LOGS=${OUT:-$STAGE/logs}
rm -rf "$STAGE"; mkdir -p "$STAGE/models" "$LOGS"

nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader
$PY -c "import torch, numpy, sentencepiece, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

run_pair() {  # $1 $2: two commands (strings) run in parallel; logs $3 $4; returns non-zero if either failed
  bash -c "$1" >"$3" 2>&1 & local a=$!
  bash -c "$2" >"$4" 2>&1 & local b=$!
  local ra=0 rb=0
  wait $a || ra=$?
  wait $b || rb=$?
  echo "exit codes: $ra $rb"
  return $(( ra != 0 || rb != 0 ))
}

t0=$(date +%s)
if ! run_pair \
  "$PY models/train/train_lm.py --data .carry/lmdata --out $STAGE/smoke/lm --smoke" \
  "$PY models/train/train_demos.py --out-root $STAGE/smoke/demos --smoke" \
  "$LOGS/smoke-lm.log" "$LOGS/smoke-demos.log"; then
  echo "SMOKE FAILED"; tail -n 30 "$LOGS/smoke-lm.log" "$LOGS/smoke-demos.log"; exit 1
fi
grep -h -E "HF check|transformers Mamba|done in|: [0-9]+ steps" "$LOGS/smoke-lm.log" "$LOGS/smoke-demos.log"
echo "smoke ok after $(( $(date +%s) - t0 )) s"

run_pair \
  "$PY models/train/train_lm.py --data .carry/lmdata --out $STAGE/models/$LM_NAME --minutes $LM_MINUTES" \
  "$PY models/train/train_demos.py --out-root $STAGE/models/demos --seconds $DEMO_SECONDS" \
  "$LOGS/lm.log" "$LOGS/demos.log"
status=$?
echo "training finished after $(( $(date +%s) - t0 )) s (status $status)"

if [ -n "${OUT:-}" ]; then
  tar -C "$STAGE" -cf - models | split -b 15m - "$OUT/models.tar.part-"
  ls -la "$OUT"
fi
grep -h -E "^step|trained|held-out|transformers Mamba|HF check" "$LOGS/lm.log" | tail -n 25
grep -h -E "steps in|Error|error" "$LOGS/demos.log"
tail -n 5 "$LOGS/lm.log" "$LOGS/demos.log"
exit $status
