"""Compares Tessera's and llama.cpp's perplexity JSON for the `*_ppl_check.sh` scripts.

Usage: python3 compare_ppl.py TESSERA_JSON LLAMA_CPP_JSON TOLERANCE KEY
Prints one JSON line (both perplexities, their relative difference, token counts and KEY = whether the difference
is under TOLERANCE) and exits 1 when it is not; when llama.cpp was skipped, prints that and exits 0.
"""
import json
import sys


def main():
    t, l = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    tol, key = float(sys.argv[3]), sys.argv[4]
    if "skipped" in l:
        print(json.dumps({"tessera_ppl": t["perplexity"], "llama_cpp": l}))
        return 0
    rel = abs(t["perplexity"] - l["perplexity"]) / l["perplexity"]
    print(json.dumps({"tessera_ppl": t["perplexity"], "llama_cpp_ppl": l["perplexity"], "relative_diff": rel,
                      "tokens": [t["tokens"], l["tokens"]],
                      "scored_tokens": [t["scored_tokens"], l["scored_tokens"]], key: rel < tol}))
    return 0 if rel < tol else 1


if __name__ == "__main__":
    sys.exit(main())
