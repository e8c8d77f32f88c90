#!/usr/bin/env bash
# Real-model export check: llama.cpp computes the same perplexity on Tessera's exported f32 GGUF as Tessera's
# runtime (target: within 0.5%). Needs the asset step and llama-cpp-python.
# Usage: crates/tessera-lm/bench/export_ppl_check.sh [TEXT_FILE] [TOKENS] [PYTHON]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="$root/target/release/tessera"
text="${1:-}"
if [ -z "$text" ]; then
  text="$(mktemp --suffix=.txt)"
  # A short default text: the start of WikiText-2's test split when available, else a fixed paragraph.
  if [ -f "$root/../shared/data/wikitext2/raw/wiki.test.raw" ]; then
    head -c 4000 "$root/../shared/data/wikitext2/raw/wiki.test.raw" > "$text"
  else
    printf '%s\n' "The Eiffel Tower, completed in 1889 for the World's Fair in Paris, was at first criticised by many of France's leading artists. Today it is the most visited paid monument in the world, and its silhouette is recognised everywhere. Engineers admire its lattice of wrought iron, which weighs about seven thousand tonnes and sways only a few centimetres in strong wind." > "$text"
  fi
fi
n="${2:-256}"
py="${3:-python3}"
out="$(mktemp -d)"
"$bin" export smollm2-135m --gguf "$out/smollm2-f32.gguf" --json >&2
ours="$("$bin" perplexity "$out/smollm2-f32.gguf" --text "$text" --window "$n" --stride "$n" --max-tokens "$n" --json)"
theirs="$("$py" "$here/llama_cpp_ppl.py" "$out/smollm2-f32.gguf" "$text" "$n")"
"$py" "$here/compare_ppl.py" "$ours" "$theirs" 0.005 within_0_5_percent
rm -rf "$out"
