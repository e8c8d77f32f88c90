"""Perplexity of a GGUF model under llama.cpp (llama-cpp-python), for `bench/export_ppl_check.sh`.

Usage: python3 llama_cpp_ppl.py MODEL.gguf TEXT_FILE MAX_TOKENS
Tokenizes the text with llama.cpp (no BOS, as Tessera's protocol), keeps the first MAX_TOKENS tokens, evaluates
them as ONE window and prints one JSON line: perplexity, mean NLL, token count and the first ids (to check that
both engines saw the same tokens). Tessera's side: `tessera perplexity MODEL --window N --stride N --max-tokens N`.
"""
import json
import math
import sys


def main():
    model, text_file, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        import numpy as np
        from llama_cpp import Llama
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(json.dumps({"skipped": f"llama_cpp not importable: {e}"}))
        return
    text = open(text_file, encoding="utf-8").read().replace("\r\n", "\n").replace("\r", "\n")
    llm = Llama(model_path=model, n_ctx=max(max_tokens, 64), n_batch=max(max_tokens, 64), n_threads=2,
                logits_all=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:max_tokens]
    llm.eval(ids)
    nll = 0.0
    for i in range(len(ids) - 1):
        row = np.asarray(llm.scores[i], dtype=np.float64)
        m = row.max()
        lse = m + math.log(np.exp(row - m).sum())
        nll += lse - row[ids[i + 1]]
    n = len(ids) - 1
    print(json.dumps({"perplexity": math.exp(nll / n), "nll": nll / n, "tokens": len(ids),
                      "scored_tokens": n, "first_ids": ids[:16]}))


if __name__ == "__main__":
    main()
