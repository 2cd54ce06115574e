"""Validation quality against wall time, from run directories: compare training regimes at equal
time (e.g. the paper's batch of 2048 against a large-data mode with a larger batch).

    python bench/equal_time.py RUN_DIR [RUN_DIR ...] [--metric recall@20] [--marks 5,10,15,20,25]
    python bench/equal_time.py RUN_DIR [RUN_DIR ...] --epochs 10,20,40   # at equal epochs instead

For each run: its batch size and learning rate (config.json), the epochs done, the best
validation value of `--metric` reached by each time mark (minutes of training + validation,
summed from history.jsonl's train_seconds and eval_seconds, so start-up and data loading are
left out) or, with --epochs, by each epoch, and the final test metrics (result.json) at its
validation-best epoch ("–" for a run still going: interrupted, resumable). An epoch mark past
a run's last validation, or a minute mark past an unfinished run's, is "–".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from softbpr.rundir import RunDir


def curve(hist: list[dict], metric: str) -> list[tuple[float, int, float]]:
    """(cumulative minutes, epoch, best-so-far validation metric) after each validated epoch of
    a run's history rows."""
    out, t, best = [], 0.0, float("-inf")
    for h in hist:
        t += h.get("train_seconds", 0.0) + h.get("eval_seconds", 0.0)
        if metric in h.get("valid", {}):
            best = max(best, h["valid"][metric])
            out.append((t / 60, h["epoch"], best))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--metric", default="recall@20")
    ap.add_argument("--marks", default="5,10,15,20,25", help="minutes")
    ap.add_argument("--epochs", default="", help="epoch marks instead of minutes, e.g. 10,20,40")
    a = ap.parse_args(argv)
    by_epoch = bool(a.epochs)
    marks = [float(m) for m in (a.epochs or a.marks).split(",")]
    unit = "epoch {:g}" if by_epoch else "{:g} min"
    print("| run | batch | lr | epochs | s/epoch (train) | "
          + " | ".join(f"valid {a.metric} by " + unit.format(m) for m in marks)
          + f" | test {a.metric} | test ndcg@20 |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(marks) + "---:|---:|")
    for r in map(RunDir, a.runs):  # a run still going may have a torn last history line
        cfg, hist, res = r.read_config(), r.read_history(), r.read_result()
        done = res is not None
        c = curve(hist, a.metric)
        reach = (c[-1][1] if by_epoch else c[-1][0]) if c else 0  # how far the curve goes
        at = [max((v for t, e, v in c if (e if by_epoch else t) <= m), default=float("nan"))
              if m <= reach or (done and not by_epoch) else None for m in marks]
        secs = [h["train_seconds"] for h in hist]  # none yet: a run in its first epoch
        sec = f"{sorted(secs)[len(secs) // 2]:.1f}" if secs else "–"  # the upper median
        test = (f"{res['test'][a.metric]:.4f} | {res['test']['ndcg@20']:.4f}" if done
                else "– | –")
        print(f"| {r.name} | {cfg['train']['batch_size']} | {cfg['train']['lr']:g} | "
              f"{len(hist)} | {sec} | "
              + " | ".join("–" if v is None else f"{v:.4f}" for v in at) + f" | {test} |")


if __name__ == "__main__":
    main()
