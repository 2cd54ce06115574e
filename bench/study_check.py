"""Convergence and false-negative check of a sweep's runs, from their run directories only.

    python bench/study_check.py sweeps/table2-tuned            # or an unpacked runs tarball

Per method and dataset, at the point `softbpr report` chooses on validation: each seed's best
epoch against the epoch cap (converged when best epoch <= 80% of the cap, and the run stopped
early rather than on the cap), and the mean share of chosen negatives that are held-out
positives (`neg_heldout_rate`, the false-negative rate of the sampler) over the epochs up to
the best one, and the median training seconds per epoch (`train_seconds`: the cost of the
method as the study ran it, one thread per process, two processes on two cores).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from softbpr.report import load_results, select
from softbpr.rundir import RunDir


def main(folder: str) -> None:
    out = Path(folder)
    rows = load_results(out / "results.jsonl")
    chosen = select(rows)
    print("| method | dataset | seed | best epoch | epochs run | cap | converged | "
          "false-negative rate | s/epoch |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for (key, dataset), c in sorted(chosen.items(), key=lambda kv: str(kv[0])):
        for r in sorted((r for r in rows if r.get("point_id") == c.point_id),
                        key=lambda r: r["seed"]):
            rd = RunDir(out / r["run"] if (out / r["run"]).exists() else out / "runs" / r["run"])
            hist = rd.read_history()
            cap = rd.read_config()["train"]["epochs"]
            best = r["best_epoch"]
            fn = [h["neg_heldout_rate"] for h in hist
                  if h["epoch"] <= best and "neg_heldout_rate" in h]
            ok = best <= 0.8 * cap and len(hist) < cap
            secs = [h["train_seconds"] for h in hist if "train_seconds" in h]
            print(f"| {r['method']} | {dataset} | {r['seed']} | {best} | {len(hist)} | {cap} | "
                  f"{'yes' if ok else 'NO'} | "
                  f"{(sum(fn) / len(fn)) if fn else float('nan'):.4f} | "
                  f"{statistics.median(secs) if secs else float('nan'):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sweeps/table2-tuned")
