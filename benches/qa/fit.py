#!/usr/bin/env python3
"""Learn the rank weights of rwkv-heads' retrieval (`WEIGHTS` in crates/rwkv-heads/src/retrieve.rs).

    rwkv-bench qa --store S --questions Q.jsonl --features /tmp/feat-NAME.jsonl   # per code base
    python3 benches/qa/fit.py /tmp/feat-click.jsonl /tmp/feat-express.jsonl ...

Each features file holds, per question, the score parts of its first 100 units and which of them
are gold. The model is linear in the parts; it is fitted by a listwise softmax over each answerable
question's best TOPK (default 20) units, L2-regularised, with Adam. It prints unit hit@1/hit@3
leaving each file (code base) out in turn beside the current ranking, then the weights fitted on
all files, in the order of `FEATURES`. Needs numpy.
"""
import json
import os
import sys

import numpy as np

TOPK = int(os.environ.get("TOPK", "20"))
L2 = float(os.environ.get("L2", "0.01"))
ITERS = int(os.environ.get("ITERS", "3000"))


def load(path):
    rows, names = [], None
    for line in open(path):
        r = json.loads(line)
        names = r["names"]
        if not r["answerable"] or not r["units"]:
            continue
        X = np.array([u["f"] for u in r["units"]], dtype=np.float64)
        y = np.array([u["gold"] for u in r["units"]], dtype=np.float64)
        rows.append((X, y))
    return names, rows


def evaluate(w, rows):
    h1 = h3 = 0
    for X, y in rows:
        order = np.argsort(-(X @ w), kind="stable")
        h1 += y[order[0]] > 0
        h3 += y[order[:3]].max() > 0
    return int(h1), int(h3)


def current(rows):
    return sum(int(y[0] > 0) for _, y in rows), sum(int(y[:3].max() > 0) for _, y in rows)


def fit(rows, lr=0.05):
    d = rows[0][0].shape[1]
    sd = np.vstack([X for X, _ in rows]).std(0) + 1e-6
    w, m, v = np.zeros(d), np.zeros(d), np.zeros(d)
    for t in range(1, ITERS + 1):
        g = np.zeros(d)
        for X, y in rows:
            Z, yy = X[:TOPK] / sd, y[:TOPK]
            if yy.sum() == 0:
                continue
            s = Z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            g += Z.T @ (p - yy / yy.sum())
        g = g / len(rows) + L2 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w / sd


def main():
    files = sys.argv[1:]
    if not files:
        sys.exit(__doc__)
    data = {}
    for f in files:
        names, data[f] = load(f)
    tot = np.zeros(4, dtype=int)
    for held in files:
        w = fit([r for f in files if f != held for r in data[f]])
        e, b = evaluate(w, data[held]), current(data[held])
        tot += [*e, *b]
        print(f"{held}: left out, learned hit@1 {e[0]}/{len(data[held])} hit@3 {e[1]}; current hit@1 {b[0]} hit@3 {b[1]}")
    print(f"all left out in turn: learned hit@1 {tot[0]} hit@3 {tot[1]}; current hit@1 {tot[2]} hit@3 {tot[3]}")
    w = fit([r for f in files for r in data[f]])
    print("weights fitted on all files:")
    for n, x in zip(names, w):
        print(f"  {n:14s} {x:+.3f}")


if __name__ == "__main__":
    main()
