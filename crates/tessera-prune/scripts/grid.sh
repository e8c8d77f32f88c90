#!/usr/bin/env bash
# The README grid: dense and magnitude / Wanda / SparseGPT × {2:4, 50%, 4:8, 70%} on SmolLM2-135M-Instruct,
# WikiText-2 raw test perplexity (non-overlapping windows of 512), then Wanda + LoRA vs Wanda + SparseLoRA at 2:4.
# Resumable: a cell whose JSON exists under results/ is skipped. Pruned checkpoints go to $SCRATCH (not committed).
#   EVAL_TOKENS   tokens of WikiText-2 test scored per cell (default 65536)
#   NSAMPLES      calibration windows of 512 tokens (default 128)
#   STEPS         SparseLoRA / LoRA steps (default 100), SEQLEN tokens per step (default 512)
# Run from the workspace root: setsid nice -n 10 crates/tessera-prune/scripts/grid.sh > grid.log 2>&1 &
set -u
cd "$(dirname "$0")/../../.."
BIN=./target/release/tessera
RES=crates/tessera-prune/results
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
cell dense $BIN perplexity smollm2-135m --window 512 --stride 512 --max-tokens "$EVAL_TOKENS" --json
for pat in 2:4 0.5 4:8 0.7; do
  for method in wanda sparsegpt magnitude; do
    tag=${pat/:/-}
    case $pat in *:*) target=(--pattern "$pat");; *) target=(--sparsity "$pat");; esac
    cell "$method-$tag" $BIN prune smollm2-135m --method "$method" "${target[@]}" --nsamples "$NSAMPLES" \
      --seqlen 512 --seed 0 --out "$SCRATCH/$method-$tag" --eval-tokens "$EVAL_TOKENS" --json
  done
done
for form in sparselora lora; do
  flag=(); [ $form = lora ] && flag=(--plain-lora)
  [ -d "$SCRATCH/wanda-2-4" ] || continue
  cell "wanda-2-4-$form" $BIN sparselora "$SCRATCH/wanda-2-4" --teacher smollm2-135m --steps "$STEPS" \
    --seqlen "$SEQLEN" "${flag[@]}" --checkpoint-every 10 --resume --out "$SCRATCH/wanda-2-4-$form" \
    --eval-tokens "$EVAL_TOKENS" --json
done
echo "$(date -u +%H:%M:%S) grid finished"
