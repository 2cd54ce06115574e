"""Convergence and false-negative check of a sweep's runs, from their run directories only.

    python bench/study_check.py sweeps/table2-tuned            # or an unpacked runs tarball
    python bench/study_check.py --results R.jsonl DIR [DIR ...]   # rows of R, runs in the DIRs

Per method and dataset, at the point `softbpr report` chooses on validation: each seed's best
epoch against the epoch cap (converged when best epoch <= 80% of the cap, and the run stopped
early rather than on the cap; for a run stopped on its time limit, `train.time_limit`, the cap
is the epochs it ran, shown as "N (time)", and one with early stopping on must also be past
its patience: cut off while it was still waiting for an improvement, it is not converged), and
the mean share of chosen negatives that are held-out positives (`neg_heldout_rate`, the
false-negative rate of the sampler) over the epochs up to the best one, and the median training
seconds per epoch (`train_seconds`: the cost of the method as the study ran it, one thread per
process, two processes on two cores).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from softbpr.report import load_results, select
from softbpr.rundir import RunDir, run_of_row


def _run_dir(folders: list[Path], run: str) -> RunDir:
    """The run directory `run` in the first folder that has it (as `run` or `runs/run`)."""
    if (rd := run_of_row(folders, run)) is None:
        raise SystemExit(f"run {run}: not found in {', '.join(map(str, folders))}")
    return rd


def main(folders: list[str], results: str | None = None) -> None:
    dirs = [Path(f) for f in folders]
    rows = load_results(Path(results) if results else dirs[0] / "results.jsonl")
    chosen = select(rows)
    print("| method | dataset | seed | best epoch | epochs run | cap | converged | "
          "false-negative rate | s/epoch |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for (key, dataset), c in sorted(chosen.items(), key=lambda kv: str(kv[0])):
        for r in sorted((r for r in rows if r.get("point_id") == c.point_id),
                        key=lambda r: r["seed"]):
            rd = _run_dir(dirs, r["run"])
            hist = rd.read_history()
            train = rd.read_config()["train"]
            cap = train["epochs"]
            best = r["best_epoch"]
            fn = [h["neg_heldout_rate"] for h in hist
                  if h["epoch"] <= best and "neg_heldout_rate" in h]
            if r.get("stop_reason") == "time_limit":  # the budget, not the epochs, ended it
                ok, cap = best <= 0.8 * len(hist), f"{len(hist)} (time)"
                if train.get("patience", 0) > 0:  # cut off before its early stop could fire
                    ok = ok and len(hist) - best >= train["patience"] * train["eval_every"]
            else:
                ok = best <= 0.8 * cap and len(hist) < cap
            secs = [h["train_seconds"] for h in hist if "train_seconds" in h]
            print(f"| {r['method']} | {dataset} | {r['seed']} | {best} | {len(hist)} | {cap} | "
                  f"{'yes' if ok else 'NO'} | "
                  f"{(sum(fn) / len(fn)) if fn else float('nan'):.4f} | "
                  f"{statistics.median(secs) if secs else float('nan'):.2f} |")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="*", default=["sweeps/table2-tuned"])
    ap.add_argument("--results", help="result rows to check (default: FOLDER/results.jsonl)")
    a = ap.parse_args()
    main(a.folders, a.results)
