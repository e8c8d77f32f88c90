#!/usr/bin/env bash
# The README grid on SmolLM2-135M-Instruct: WikiText-2 raw test perplexity (non-overlapping windows of 512) of
# dense, magnitude / Wanda / SparseGPT at 2:4, 50%, 4:8, 70%, and Wanda 2:4 + LoRA vs + SparseLoRA. Cells run in
# priority order (so a stopped grid still has the 2:4 comparison); a cell whose JSON exists under results/ is
# skipped, so a rerun resumes. Pruned checkpoints go to $SCRATCH (not committed).
#   RES           where the cell JSONs go (default crates/tessera-prune/results)
#   EVAL_TOKENS   tokens of WikiText-2 test scored per cell (default 65536)
#   NSAMPLES      calibration windows of 512 tokens (default 128)
#   STEPS         SparseLoRA / LoRA steps (default 100), SEQLEN tokens per step (default 512)
# Run from anywhere: setsid nice -n 10 crates/tessera-prune/scripts/grid.sh > grid.log 2>&1 &
set -u
cd "$(dirname "$0")/../../.."
BIN=./target/release/tessera
RES=${RES:-crates/tessera-prune/results}
SCRATCH=${SCRATCH:-target/prune-grid}
EVAL_TOKENS=${EVAL_TOKENS:-65536}
NSAMPLES=${NSAMPLES:-128}
STEPS=${STEPS:-100}
SEQLEN=${SEQLEN:-512}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} TESSERA_QUIET=1
mkdir -p "$RES" "$SCRATCH"
cell() { # name, command...
  local name=$1; shift
  if [ -s "$RES/$name.json" ]; then echo "skip $name"; return; fi
  echo "$(date -u +%H:%M:%S) start $name: $*"
  if "$@" > "$RES/$name.json.tmp"; then mv "$RES/$name.json.tmp" "$RES/$name.json"; echo "$(date -u +%H:%M:%S) done $name";
  else rm -f "$RES/$name.json.tmp"; echo "$(date -u +%H:%M:%S) FAILED $name"; fi
}
prune_cell() { # method pattern
  local method=$1 pat=$2 tag=${2/:/-} target
  case $pat in *:*) target=(--pattern "$pat");; *) target=(--sparsity "$pat");; esac
  cell "$method-$tag" $BIN prune smollm2-135m --method "$method" "${target[@]}" --nsamples "$NSAMPLES" \
    --seqlen 512 --seed 0 --out "$SCRATCH/$method-$tag" --eval-tokens "$EVAL_TOKENS" --json
}
recover_cell() { # form (sparselora|lora) pruned-tag
  local form=$1 tag=$2 flag=()
  [ "$form" = lora ] && flag=(--plain-lora)
  [ -d "$SCRATCH/wanda-$tag" ] || return
  cell "wanda-$tag-$form" $BIN sparselora "$SCRATCH/wanda-$tag" --teacher smollm2-135m --steps "$STEPS" \
    --seqlen "$SEQLEN" "${flag[@]}" --checkpoint-every 5 --resume --out "$SCRATCH/wanda-$tag-$form" \
    --eval-tokens "$EVAL_TOKENS" --json
}
cell dense $BIN perplexity smollm2-135m --window 512 --stride 512 --max-tokens "$EVAL_TOKENS" --json
prune_cell wanda 2:4
prune_cell magnitude 2:4
recover_cell sparselora 2-4
prune_cell sparsegpt 2:4
recover_cell lora 2-4
for pat in 0.5 4:8 0.7; do
  for method in magnitude wanda sparsegpt; do prune_cell $method $pat; done
done
recover_cell sparselora 0.7
recover_cell lora 0.7
echo "$(date -u +%H:%M:%S) grid finished"
