"""Perplexity of a GGUF model under llama.cpp (llama-cpp-python), for `bench/export_ppl_check.sh`.

Usage: python3 llama_cpp_ppl.py MODEL.gguf TEXT_FILE MAX_TOKENS [WINDOW]
Tokenizes the text with llama.cpp (no BOS, as Tessera's protocol), keeps the first MAX_TOKENS tokens, evaluates
them in non-overlapping windows of WINDOW tokens (default: one window), each from an empty cache and scoring its
tokens 1..WINDOW-1, and prints one JSON line: perplexity, mean NLL, token counts and the first ids (to check that
both engines saw the same tokens). Tessera's side: `tessera perplexity MODEL --window W --stride W --max-tokens N`.
"""
import json
import math
import sys


def main():
    model, text_file, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    window = int(sys.argv[4]) if len(sys.argv) > 4 else max_tokens
    try:
        import numpy as np
        from llama_cpp import Llama
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(json.dumps({"skipped": f"llama_cpp not importable: {e}"}))
        return
    text = open(text_file, encoding="utf-8").read().replace("\r\n", "\n").replace("\r", "\n")
    llm = Llama(model_path=model, n_ctx=max(window, 64), n_batch=max(window, 64), n_threads=2,
                logits_all=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:max_tokens]
    nll, n = 0.0, 0
    for begin in range(0, len(ids), window):
        win = ids[begin:begin + window]
        if len(win) < 2:
            break
        llm.reset()
        llm.eval(win)
        for i in range(len(win) - 1):
            row = np.asarray(llm.scores[i], dtype=np.float64)
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            nll += lse - row[win[i + 1]]
            n += 1
    print(json.dumps({"perplexity": math.exp(nll / n), "nll": nll / n, "tokens": len(ids),
                      "scored_tokens": n, "first_ids": ids[:16]}))


if __name__ == "__main__":
    main()
