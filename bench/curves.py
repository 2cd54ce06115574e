"""The numbers behind Figures 3a-b and 4: where each full training curve peaks and what it has
lost by its last epoch.

    python bench/curves.py sweeps/figs-tmall                  # a sweep folder
    python bench/curves.py docs/results/figs-tmall-runs.tar.gz # or the committed runs

For every run (no early stop: patience 0) it reads history.jsonl and prints one row per
(method, H) over the seeds: the validation-best epochs, the best validation metric, the drop
from the best to the last validated epoch (in % of the best: Figure 4's robustness, Figure
3a-b's over-fitting), and the last epoch's score gap (mean ŷ_ui − ŷ_uj) and false-negative rate
(held-out positives among the negatives), the diagnostics the discussion quotes. Metric: the
runs' `eval.metric` (validation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from softbpr.plots import load_runs


def rows(path: Path) -> list[dict]:
    out = []
    for run in load_runs(path):
        metric = run.config["metric"]
        hist = run.history
        curve = [(h["epoch"], h["valid"][metric]) for h in hist if metric in h.get("valid", {})]
        if not curve:
            continue
        best_epoch, best = max(curve, key=lambda x: (x[1], -x[0]))
        last_epoch, last = curve[-1]
        out.append({"method": run.config["method"], "H": run.config["pool_size"],
                    "seed": run.seed, "metric": metric, "best_epoch": best_epoch,
                    "best": best, "last_epoch": last_epoch,
                    "drop": 100.0 * (best - last) / best if best else float("nan"),
                    "gap": hist[-1].get("score_gap"), "fn": hist[-1].get("neg_heldout_rate")})
    return out


def _span(vals, fmt: str) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    lo, hi = min(vals), max(vals)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else \
        f"{format(lo, fmt)}–{format(hi, fmt)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", help="a sweep folder, or a .tar.gz of run directories")
    a = ap.parse_args(argv)
    path = Path(a.path)
    with tempfile.TemporaryDirectory() as tmp:
        if path.is_file():
            with tarfile.open(path) as tf:
                tf.extractall(tmp, filter="data")
            path = Path(tmp)
        found = rows(path)
    if not found:
        raise SystemExit(f"{a.path}: no run with a validation curve")
    groups = defaultdict(list)
    for r in found:
        groups[(r["method"], r["H"])].append(r)
    m = found[0]["metric"]
    print(f"| method | H | seeds | best epochs | best valid {m} | last epoch | drop best→last | "
          "score gap, last | false-negative rate, last |")
    print("|---|---:|---|---|---:|---:|---|---|---|")
    for (method, h), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        print(f"| {method} | {h} | {','.join(str(r['seed']) for r in rs)} | "
              f"{_span([r['best_epoch'] for r in rs], 'd')} | "
              f"{statistics.mean(r['best'] for r in rs):.4f} | "
              f"{_span([r['last_epoch'] for r in rs], 'd')} | "
              f"{_span([r['drop'] for r in rs], '.1f')}% | {_span([r['gap'] for r in rs], '.2f')} | "
              f"{_span([r['fn'] for r in rs], '.4f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
