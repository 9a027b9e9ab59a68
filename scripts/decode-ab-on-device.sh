#!/usr/bin/env bash
# Same-call A/B of the decode step on the GPU machine: several bench binaries and/or environment
# settings, alternating inside each round, so that the card's drift between calls (clocks, power
# cap) falls on every configuration alike. Run from the repository root (the assets are read from
# there); the binaries are BIN_DIR/bench-NAME (mambascope-bench builds, e.g. unpacked by
# `scripts/gpu-check-on-device.sh run`, which leaves the pack's in /tmp/g).
#
#   CONFIGS="base:BIN=base new:BIN=new slots6:BIN=new,MAMBASCOPE_FUSED_SLOTS=6" \
#   MODELS="130m 1.4b 2.8b" ROUNDS=3 scripts/decode-ab-on-device.sh [BIN_DIR]
#
# Each run is `MAMBASCOPE_BENCH_QUICK=1 mambascope-bench --models M --decode-only
# --decode-tokens ${TOK:-256}`; one line per run (tok/s and block 0's profile phases, µs a token)
# goes to stdout and to $OUT/ab.log, the runs' JSON lines (LABEL-MODEL-ROUND.jsonl) into
# $OUT/ab.tgz: one file, since the device tool brings back only so many.
set -u
bins=${1:-/tmp/g}
out=${OUT:-/tmp/decode-ab}
runs=$(mktemp -d)
mkdir -p "$out"
: "${CONFIGS:?set CONFIGS, e.g. CONFIGS=\"a:BIN=a b:BIN=b\"}"
export LD_LIBRARY_PATH=$bins:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} MAMBASCOPE_ASSETS_DIR=$PWD/assets
for r in $(seq 1 "${ROUNDS:-2}"); do
  for model in ${MODELS:-130m}; do
    for c in $CONFIGS; do
      label=${c%%:*} envs=${c#*:}
      envs=${envs//,/ } bin=mambascope-bench
      for x in $envs; do case $x in BIN=*) bin=bench-${x#BIN=} ;; esac; done
      json=$runs/$label-$model-$r.jsonl
      # shellcheck disable=SC2086  # envs is a list of VAR=value words
      env $envs MAMBASCOPE_BENCH_QUICK=1 timeout 200 "$bins/$bin" --models "$model" --decode-only \
        --decode-tokens "${TOK:-256}" > "$json" 2>> "$runs/errors.log"
      python3 - "$json" "$label" <<'PY' | tee -a "$out/ab.log"
import json, sys
keys = ['step (block 0)', 'F lm_head', 'F merge (block 0)', 'A in_proj', 'A wait (residual)', 'B wait (x_proj)',
        'C wait (y)', 'C out_proj+residual', 'weight ring waits (inside phases)']
line = [sys.argv[2]]
for text in open(sys.argv[1]):
    if not text.startswith('{'):
        continue
    d = json.loads(text)
    if d.get('bench') == 'decode':
        line.insert(1, f"{d['model']} {d['tok_per_s']:.1f} tok/s")
    elif d.get('bench') == 'decode_profile':
        p = d['us_per_token_block0']
        line += [f"{k.split(' (')[0]}={p[k]:.1f}" for k in keys if k in p]
print(*line)
PY
    done
  done
done
sort "$runs/errors.log" | uniq -c | head
# Several calls of the script in one device call add to the same archive.
[ -f "$out/ab.tgz" ] && tar -C "$runs" --skip-old-files -xzf "$out/ab.tgz"
tar -C "$runs" -czf "$out/ab.tgz" . && rm -rf "$runs"
