#!/usr/bin/env bash
# Quantized-path perplexity check (issue 21): Tessera on the GGUF's own blocks (`--dtype file`) vs llama.cpp on the
# same file, first N tokens (default 16,384) of WikiText-2 raw test, non-overlapping windows of W tokens (default
# 1024), each from an empty cache. Target: within 1%. Needs the asset step and llama-cpp-python.
# Usage: crates/tessera-lm/bench/quant_ppl_check.sh [TOKENS] [WINDOW] [MODEL] [PYTHON]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${TESSERA_BIN:-$root/target/release/tessera}"
n="${1:-16384}"
w="${2:-1024}"
model="${3:-smollm2-135m}"
py="${4:-python3}"
text="$root/../shared/data/wikitext2/raw/wiki.test.raw"
[ -f "$text" ] || { echo "missing $text (WikiText-2 raw, see ../shared/data/MANIFEST.md)" >&2; exit 2; }
gguf="$("$bin" --offline info "$model" --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["path"])')"
ours="$("$bin" --offline perplexity "$model" --dtype file --text "$text" --window "$w" --stride "$w" --max-tokens "$n" --json)"
theirs="$("$py" "$here/llama_cpp_ppl.py" "$gguf" "$text" "$n" "$w")"
"$py" "$here/compare_ppl.py" "$ours" "$theirs" 0.01 within_1_percent
