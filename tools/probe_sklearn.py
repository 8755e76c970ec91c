#!/usr/bin/env python3
"""The paper's ESC transfer protocol in scikit-learn, on features written by `sn-wgpu extract`:
an independent check of the numbers `sn-wgpu probe` reports.

    # each clip tiled to 10 s first (the protocol), then pool5 features of every clip:
    sn-wgpu extract --weights soundnet8.safetensors --layer pool5 --out feats/ esc10_10s/
    python3 tools/probe_sklearn.py ../shared/data/esc10/meta.csv feats/ [--c 0.01] [--classifier softmax]

Each clip's [C, T] features are cut into 1 s windows of w = T // 10 frames (non-overlapping from
the start), each C x w block flattened into one example; a LinearSVC (one-vs-rest, squared hinge,
L2, C) is trained on the windows of the training folds; a test clip's class is the argmax of its
windows' mean decision values; leave-one-fold-out. `--classifier softmax` trains a multinomial
LogisticRegression with the same C instead (sn-wgpu's `--classifier softmax`). Needs numpy and
scikit-learn.
"""
import argparse
import csv
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC


def windows(features, seconds=10):
    c, t = features.shape
    w = max(t // seconds, 1)
    return [features[:, i * w:(i + 1) * w].reshape(-1) for i in range(t // w)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("meta")
    ap.add_argument("features")
    ap.add_argument("--c", type=float, default=0.01)
    ap.add_argument("--classifier", choices=["svm", "softmax"], default="svm")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.meta)))
    clips = []
    for r in rows:
        stem = os.path.splitext(r["filename"])[0]
        f = np.load(os.path.join(args.features, stem + ".npy"))
        clips.append((int(r["fold"]), int(r["target"]), windows(f)))
    accs = []
    for fold in sorted({c[0] for c in clips}):
        train = [(x, y) for f, y, ws in clips if f != fold for x in ws]
        test = [(y, ws) for f, y, ws in clips if f == fold]
        if args.classifier == "svm":
            model = LinearSVC(C=args.c, max_iter=10000)
        else:
            model = LogisticRegression(C=args.c, max_iter=10000)
        model.fit(np.array([x for x, _ in train]), np.array([y for _, y in train]))
        right = sum(int(model.classes_[model.decision_function(np.array(ws)).mean(0).argmax()] == y) for y, ws in test)
        accs.append(right / len(test))
        print(f"fold {fold}: {accs[-1]:.3f} ({right}/{len(test)})")
    print(f"mean accuracy {np.mean(accs):.4f}")


if __name__ == "__main__":
    main()
