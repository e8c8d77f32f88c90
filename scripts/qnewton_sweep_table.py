#!/usr/bin/env python3
"""Markdown table of a scripts/qnewton_sweep.sh output: per (r, λ-ε, compensation), mean ± std test accuracy over
seeds, mean train loss, and the accuracy gap to classical Newton (default ε = 0.1) on the same seeds."""
import collections, json, statistics as st, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
newton = {(r["seed"], r["reg_eps"]): r for r in rows if r["optimizer"] == "newton"}
groups = collections.defaultdict(list)
for r in rows:
    if r["optimizer"] == "qnewton":
        groups[(r["sparsity"], r["reg_eps"], r["compensate"])].append(r)
ref_eps = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
seeds = sorted({s for s, e in newton if e == ref_eps})
accs = [newton[(s, ref_eps)]["test_acc"] for s in seeds]
print(f"Newton (ε = {ref_eps}), seeds {seeds}: test acc {st.mean(accs):.3f} ± {st.pstdev(accs):.3f}, "
      f"train loss {st.mean(newton[(s, ref_eps)]['train_loss'] for s in seeds):.3f}\n")
print("| r | ε (λ = ε·max\\|H\\|) | compensate | seeds | test acc (mean ± sd) | train loss | gap to Newton, points (mean / worst seed) |")
print("|---|---|---|---|---|---|---|")
for (r, e, c), g in sorted(groups.items()):
    a = [x["test_acc"] for x in g]
    gaps = [100 * (x["test_acc"] - newton[(x["seed"], ref_eps)]["test_acc"]) for x in g if (x["seed"], ref_eps) in newton]
    gap = f"{st.mean(gaps):+.1f} / {min(gaps):+.1f}" if gaps else ""
    print(f"| {r} | {e} | {'on' if c else 'off'} | {len(g)} | {st.mean(a):.3f} ± {st.pstdev(a):.3f} | "
          f"{st.mean(x['train_loss'] for x in g):.3f} | {gap} |")
