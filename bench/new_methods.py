"""Seconds per training epoch of the methods beyond the paper (issue 14) against DNS and SDNS.

    OMP_NUM_THREADS=1 python bench/new_methods.py                 # ml-100k, temporal split
    OMP_NUM_THREADS=1 python bench/new_methods.py --epochs 3 --set n_negatives=64 --json out.json
    OMP_NUM_THREADS=1 python bench/new_methods.py --sweep configs/sweep-new-methods.toml

Each method is its preset (with the preset's own sizes: DNS(2, 200), Softmax(ρ, 200),
AHNS H = 32, SL/BSL/PSL with 256 uniform negatives, SL-DNS the 64 best of 256, in-batch SL/BSL
with the batch's 2047 other positives) on LightGCN (d = 64, L = 3, batch 2048), trained through
the real `train_one_epoch`. The methods take turns, one epoch each, `--epochs` rounds, so that
all are timed under the same conditions on a shared machine; the median epoch is reported with
its sampling share and the ratio to DNS's. `--set key=value` overrides every method's config
(e.g. n_negatives=64). `--sweep FILE` times the runs of a sweep file instead (its first seed;
each named by its `method` bundle label, else its method): the cost of exactly what was compared.
`--results FILE` times the point `softbpr report` chooses on validation for each method of a
results.jsonl (e.g. docs/results/table2-tuned-all-results.jsonl): the cost of what was reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from softbpr.config import load
from softbpr.distributed import Dist
from softbpr.split import load_split
from softbpr.trainer import build_parts, train_one_epoch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = ["dns", "sdns", "dns-mn", "softmax-rho", "ahns", "hard-bpr", "sl", "sl-batch",
           "sl-dns", "bsl", "bsl-batch", "psl"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(SHARED / "ml-100k" / "u.data"))
    ap.add_argument("--columns", default="user,item,rating,timestamp")
    ap.add_argument("--split", default="temporal")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per method (rounds)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--sweep", help="time the runs of this sweep file (first seed)")
    ap.add_argument("--results", help="time the validation-chosen point of each method in this "
                                      "results.jsonl (e.g. a tuned study's; --dataset picks one)")
    ap.add_argument("--dataset", default="ml-100k", help="with --results: which dataset's rows")
    args = ap.parse_args()
    over = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        over[k] = json.loads(v) if v[:1] in "0123456789-[{" or v in ("true", "false") else v
    base = {"data": args.data, "columns": args.columns, "split": args.split, "device": "cpu",
            "model": "lightgcn", "dim": 64, "layers": 3, "batch_size": 2048}
    if args.sweep:
        from softbpr.sweep import expand, load_sweep

        specs = expand(load_sweep(args.sweep, seeds=[1], overrides={"device": "cpu", **over}))
        exps = {s.labels.get("method", s.exp.method): s.exp for s in specs}
    elif args.results:
        from softbpr.report import ORDER, load_results, select

        chosen = [c for (row, ds), c in select(load_results(Path(args.results))).items()
                  if ds == args.dataset]
        want = set(args.methods.split(",")) if args.methods != ",".join(METHODS) else None
        exps = {}
        rank = {m: k for k, m in enumerate(ORDER)}
        for c in sorted(chosen, key=lambda c: (rank.get(c.runs[0]["method"], -1), str(c.row))):
            r = c.runs[0]
            if want is None or r["method"] in want:
                cfg = {k: v for k, v in r["config"].items() if k != "method"}
                exps[r["method"]] = load(overrides={**cfg, "device": "cpu", **over})
    else:
        exps = {}
        for m in args.methods.split(","):
            o = {**base, "preset": m, **over}
            if m in ("sl-batch", "bsl-batch", "dns", "sdns", "hard-bpr"):
                o.pop("n_negatives", None)  # one negative (in-batch: the sampler's is unused)
            exps[m] = load(overrides=o)
    methods = list(exps)
    split = load_split(next(iter(exps.values())).data, log=lambda m: None)
    print(split.summary())
    parts = {}
    for m in methods:
        parts[m] = build_parts(exps[m], split, Dist(), torch.device("cpu"))
        parts[m].sampler.on_epoch_start(0)  # the sampler's epoch hook (GANs: generator step)
        train_one_epoch(parts[m])  # warm-up epoch (allocator, first-touch)
    times = {m: [] for m in methods}
    sample = {m: [] for m in methods}
    for epoch in range(1, args.epochs + 1):
        for m in methods:
            t0 = time.perf_counter()
            parts[m].sampler.on_epoch_start(epoch)  # counted: part of the method's epoch
            hook = time.perf_counter() - t0
            st = train_one_epoch(parts[m])
            times[m].append(st["train_seconds"] + hook)
            sample[m].append(st["sample_seconds"])
    ref = statistics.median(times["dns"]) if "dns" in times else None  # (by label)
    rows = []
    print(f"{'method':12s} {'s/epoch':>8s} {'sampling':>9s} {'x DNS':>6s}  config")
    for m in methods:
        e = parts[m].exp
        t, s = statistics.median(times[m]), statistics.median(sample[m])
        cfg = (f"{e.sampler.name} N={e.sampler.pool_size} M={e.sampler.n_negatives}, "
               f"{e.loss.name}" + (f" ({e.loss.negatives})" if e.loss.name in ("sl", "bsl", "psl")
                                   else "") + (f" soften {e.loss.soften:g}" if e.loss.soften
                                               else ""))
        rows.append({"method": m, "epoch_s": t, "sample_s": s, "x_dns": t / ref if ref else None,
                     "config": cfg})
        print(f"{m:12s} {t:8.2f} {s:9.2f} {t / ref if ref else float('nan'):6.2f}  {cfg}")
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": split.summary(), "rows": rows,
                                               "epochs": args.epochs, "set": over,
                                               "torch": torch.__version__,
                                               "threads": torch.get_num_threads(),
                                               "cpu": platform.processor() or platform.machine()},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
