"""Decode benchmark for llama.cpp (llama-cpp-python), run by `tessera bench decode`.

Reads a JSON job on argv[1]: {"model": path, "prompt_ids": [...], "steps": N, "threads": T}.
Prints one JSON line: prompt and decode tokens/s and peak RSS, or {"skipped": reason}.
Greedy decoding over the same prompt token ids the Rust side uses, so both engines do the same work.
"""
import json
import sys
import time


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def main():
    job = json.loads(sys.argv[1])
    try:
        import numpy as np
        from llama_cpp import Llama
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(json.dumps({"skipped": f"llama_cpp not importable: {e}"}))
        return
    t = job["threads"]
    llm = Llama(model_path=job["model"], n_ctx=512, n_threads=t, n_threads_batch=t, n_batch=512,
                verbose=False, logits_all=False)
    ids = job["prompt_ids"]
    # Warm-up on a short prompt so one-off allocations are not timed.
    llm.eval(ids[:4])
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    steps = job["steps"]
    for _ in range(steps):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([tok])
    t2 = time.perf_counter()
    print(json.dumps({
        "prompt_tokens_per_s": len(ids) / (t1 - t0),
        "decode_tokens_per_s": steps / (t2 - t1),
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
