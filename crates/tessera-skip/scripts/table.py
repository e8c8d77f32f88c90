#!/usr/bin/env python3
"""Renders the README table of a `tessera skip eval --json` result: one row per variant.

usage: table.py RESULT.json
"""
import json
import sys

d = json.load(open(sys.argv[1]))
full = d["factoid_accuracy_full"]
print(f"{d['questions']} questions; full model: factoid accuracy {full:.3f}, "
      f"continuation perplexity {d['continuation_perplexity_full']:.3f}, "
      f"{d['decode_tokens_per_s_full']:.2f} decode tok/s")
print()
print("| rule | budget | layers/token | skipped | factoid acc. (Δ pt) | token exact match | identical | ROUGE-L | cont. ppl | speedup |")
print("|---|---|---|---|---|---|---|---|---|---|")
order = sorted(d["variants"], key=lambda v: (v["budget"].get("fraction", v["budget"].get("layers", 0)), v["mode"]))
for v in order:
    rule = "random span" if v["mode"] == "random-span" else f"cosine τ={v['threshold']}"
    b = v["budget"]
    budget = f"{round(100 * b['fraction'])}%" if "fraction" in b else f"{b.get('layers')} layers"
    print(f"| {rule} | {budget} | {v['span_layers']} | {100 * v['skipped_fraction']:.1f}% | "
          f"{v['factoid_accuracy_skip']:.3f} ({v['factoid_delta_points']:+.1f}) | {v['exact_match']:.3f} | "
          f"{v['identical_generations']:.3f} | {v['rouge_l']:.3f} | {v['continuation_perplexity']:.2f} | "
          f"{v['decode_speedup']:.2f}× |")
