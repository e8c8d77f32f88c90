#!/usr/bin/env python3
"""Renders the README tables from results/*.json (written by scripts/grid.sh)."""
import json, os, sys
res = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "results")
def load(n):
    p = os.path.join(res, n + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
dense = load("dense")
print("| method | pattern | perplexity | tokens scored | sparsity (7 projections) | pruning s | calibration |")
print("|---|---|---|---|---|---|---|")
if dense:
    print(f"| dense | — | {dense['perplexity']:.2f} | {dense['scored_tokens']} | 0 | — | — |")
for pat, tag in [("2:4", "2-4"), ("50%", "0.5"), ("4:8", "4-8"), ("70%", "0.7")]:
    for m in ["magnitude", "wanda", "sparsegpt"]:
        r = load(f"{m}-{tag}")
        if not r:
            print(f"| {m} | {pat} | not run | | | | |")
            continue
        p = r["perplexity"]
        c = r.get("calibration")
        cal = f"{c['nsamples']}×{c['seqlen']} {c['windows']} seed {c['seed']}" if c else "none"
        print(f"| {m} | {pat} | {p['perplexity']:.2f} | {p['scored_tokens']} | {r['sparsity']:.4f} | {r['seconds']:.1f} | {cal} |")
print()
print("| recovery of Wanda 2:4 | steps × tokens | loss first → last | perplexity before → after (merged) | sparsity after merge | mask kept | merge max |Δlogit| | train s |")
print("|---|---|---|---|---|---|---|---|")
for tag in ["2-4", "0.7"]:
    for form in ["lora", "sparselora"]:
        r = load(f"wanda-{tag}-{form}")
        if not r:
            continue
        lc = r["loss_curve"]
        b, a = r.get("perplexity_before"), r.get("perplexity_after")
        pb = f"{b['perplexity']:.2f}" if b else "(resumed)"
        pa = f"{a['perplexity']:.2f}" if a else "—"
        print(f"| Wanda {tag.replace('-', ':')} + {form} | {r['steps']} × {r['tokens_per_step']} | {lc[0]['loss']:.3f} → {lc[-1]['loss']:.3f} | {pb} → {pa} | {r['sparsity_after_merge']:.4f} | {r['mask_kept']} | {r['merge_max_abs_diff']:.1e} | {r['seconds']:.0f} |")
