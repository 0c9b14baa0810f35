#!/usr/bin/python3
"""Draws a run's metrics.jsonl as PNGs: loss, learning rate, and expert balance (max/mean load).

Usage: scripts/plot_metrics.py RUN_DIR [--out DIR]   (Debian's python3 with python3-matplotlib)
Writes loss.png, lr.png and balance.png into DIR (default: RUN_DIR).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not JSON ({e})")
    if not rows:
        sys.exit(f"{path}: no metrics")
    return rows


def plot(rows, key, ylabel, out, log_scale=False):
    steps = [r["step"] for r in rows]
    plt.figure(figsize=(6, 3.5))
    plt.plot(steps, [r[key] for r in rows])
    plt.xlabel("step")
    plt.ylabel(ylabel)
    if log_scale:
        plt.yscale("log")
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(out, dpi=100)
    plt.close()
    print(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = read_metrics(os.path.join(args.run_dir, "metrics.jsonl"))
    out = args.out or args.run_dir
    os.makedirs(out, exist_ok=True)
    plot(rows, "loss", "loss (nats/token)", os.path.join(out, "loss.png"))
    plot(rows, "lr", "learning rate", os.path.join(out, "lr.png"))
    plot(rows, "max_expert_imbalance", "max/mean expert load", os.path.join(out, "balance.png"))


if __name__ == "__main__":
    main()
