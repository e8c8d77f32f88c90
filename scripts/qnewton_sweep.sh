#!/usr/bin/env bash
# Q-Newton pruning sweep (issue #10 item 7): why do pruned blocks lose accuracy, and which defaults recover
# Newton's accuracy? Runs `tessera qnewton train` on digits for every (sparsity r, compensation, reg_eps λ, seed)
# and appends one JSON line per run to $OUT (default runs/qnewton-sweep.jsonl); a rerun skips finished runs.
# Accuracy does not depend on the gate time (it only changes routing and charged time), so every run uses 1e-18 s.
#   STEPS=40 SEEDS="0 1 2" RS="0.1 0.25 0.5 0.75" EPS="0.01 0.03 0.1 0.3" scripts/qnewton_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-./target/release/tessera}
STEPS=${STEPS:-40}
SEEDS=${SEEDS:-0 1 2}
RS=${RS:-0.1 0.25 0.5 0.75}
EPS=${EPS:-0.01 0.03 0.1 0.3}
COMP=${COMP:-on off}
OUT=${OUT:-runs/qnewton-sweep-${STEPS}.jsonl}
mkdir -p "$(dirname "$OUT")"
touch "$OUT"
row() { # key, then the tessera arguments
  local key=$1; shift
  if grep -q "\"key\":\"$key\"" "$OUT"; then return; fi
  local j
  j=$("$T" qnewton train --steps "$STEPS" --json "$@")
  python3 - "$key" "$j" >>"$OUT" <<'PY'
import json, sys
key, j = sys.argv[1], json.loads(sys.argv[2])
c = j["config"]
print(json.dumps({"key": key, "optimizer": j["optimizer"], "seed": c["seed"], "steps": c["steps"],
  "sparsity": c["newton"]["sparsity_ratio"], "compensate": c["newton"]["compensate"], "reg_eps": c["newton"]["reg_eps"],
  "test_acc": j["final_test_acc"], "train_loss": j["final_train_loss"], "time_s": j["time_s"],
  "mean_lambda": sum(b["lambda"] for b in j.get("blocks", [])) / max(1, len(j.get("blocks", []))),
  "mean_kappa": sum(b["kappa"] for b in j.get("blocks", [])) / max(1, len(j.get("blocks", [])))},
  separators=(",", ":")))
PY
}
for s in $SEEDS; do
  for e in $EPS; do
    row "newton-s$s-e$e" --optimizer newton --reg-eps "$e" --seed "$s"
  done
  for r in $RS; do for e in $EPS; do for c in $COMP; do
    flag=(); [ "$c" = off ] && flag=(--no-compensate)
    row "q-s$s-r$r-e$e-c$c" --optimizer qnewton --gate-time 1e-18 --sparsity "$r" --reg-eps "$e" --seed "$s" "${flag[@]}"
  done; done; done
done
echo "sweep: $(wc -l <"$OUT") runs in $OUT"
