"""Pruned tuning vs the exhaustive grid, from two results.jsonl files (or sweep folders).

    python bench/tune_vs_grid.py sweeps/tune-tmall sweeps/tune-tmall-grid

Per (dataset, method): the training epochs and seconds each search spent on the tuning seed,
the point each chose on validation (report.select: the tuning's pruned trials are not
candidates), their validation scores on the tuning seed, and the seed noise: the sample std of
the validation score over the seeds of the grid's chosen point (run them with
`softbpr sweep FILE --out GRID --best --seeds 1,2,3`). "Within noise" is |Δ valid| <= that std.
When both chosen points have several seeds (the tuning's with `softbpr sweep FILE --best --seeds
1,2,3`; a point's runs are looked up in both folders, since the same point and seed train the
same), a second table compares their validation means over the shared seeds, with a paired
t-test. Prints Markdown.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from softbpr.report import default_metric, load_results, paired_test, select


def _fmt_point(row: dict) -> str:
    pt = {k: v for k, v in row.get("point", {}).items()
          if k not in ("data", "format", "columns", "split", "preset")}
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in pt.items())


def compare(tune_path: str, grid_path: str, seed: int = 1) -> str:
    tune_rows, grid_rows = load_results(tune_path), load_results(grid_path)
    metric = default_metric(grid_rows)
    t_choice, g_choice = select(tune_rows, metric), select(grid_rows, metric)
    lines = [
        (f"| dataset | method | grid: points, epochs, min | tuning: trials (pruned), epochs, "
        f"min | epochs ratio | grid's choice | valid {metric} (seed {seed}) | tuning's choice | "
        f"valid {metric} (seed {seed}) | Δ valid | seed std (n) | within noise |"),
        "|---|---|---|---|---:|---|---:|---|---:|---:|---:|---|"]
    total = {"grid": 0, "tune": 0}
    for key in sorted(g_choice, key=lambda k: (k[1], str(k[0]))):
        (method,), ds = key
        g = [r for r in grid_rows if r["method"] == method and r["dataset"] == ds
             and r["seed"] == seed]
        t = [r for r in tune_rows if r["method"] == method and r["dataset"] == ds
             and r["seed"] == seed]
        ge, te = sum(r["epochs"] for r in g), sum(r["epochs"] for r in t)
        gs, ts = sum(r["seconds"] for r in g) / 60, sum(r["seconds"] for r in t) / 60
        total["grid"] += ge
        total["tune"] += te
        pruned = sum(r.get("stop_reason") == "pruned" for r in t)
        gc, tc = g_choice[key], t_choice.get(key)
        gv = next(r["valid"][metric] for r in gc.runs if r["seed"] == seed)
        tv = next(r["valid"][metric] for r in tc.runs if r["seed"] == seed) if tc else None
        noise = [r["valid"][metric] for r in gc.runs]
        sd = statistics.stdev(noise) if len(noise) > 1 else None
        delta = None if tv is None else tv - gv
        within = "–" if sd is None or delta is None else ("yes" if abs(delta) <= sd else "no")
        lines.append(
            f"| {ds} | {method} | {len(g)}, {ge}, {gs:.0f} | {len(t)} ({pruned}), {te}, "
            f"{ts:.0f} | {te / ge:.2f} | {_fmt_point(gc.runs[0])} | {gv:.4f} | "
            + (f"{_fmt_point(tc.runs[0])} | {tv:.4f} | {delta:+.4f} | " if tc else "– | – | – | ")
            + (f"{sd:.4f} ({len(noise)})" if sd is not None else "–") + f" | {within} |")
    lines.append(f"\nAll methods: the tuning trained {total['tune']} epochs, the grid "
                 f"{total['grid']} ({total['tune'] / max(total['grid'], 1):.2f} of the grid).")
    by_point: dict = {}
    for r in grid_rows + tune_rows:
        if r.get("stop_reason") == "pruned":  # a partial run, not the point's result
            continue
        by_point.setdefault(r["point_id"], {})[r["seed"]] = r["valid"][metric]
    more = []
    for key in sorted(g_choice, key=lambda k: (k[1], str(k[0]))):
        if key not in t_choice:
            continue
        g, t = by_point[g_choice[key].point_id], by_point[t_choice[key].point_id]
        common = sorted(set(g) & set(t))
        if len(common) < 2 or g_choice[key].point_id == t_choice[key].point_id:
            continue
        gm = statistics.fmean(g[s] for s in common)
        tm = statistics.fmean(t[s] for s in common)
        p, n = paired_test({s: t[s] for s in common}, {s: g[s] for s in common})
        more.append(f"| {key[1]} | {key[0][0]} | {','.join(map(str, common))} | "
                    + " ".join(f"{g[s]:.4f}" for s in common) + f" (mean {gm:.4f}) | "
                    + " ".join(f"{t[s]:.4f}" for s in common) + f" (mean {tm:.4f}) | "
                    f"{tm - gm:+.4f} | " + ("n/a" if p is None else f"{p:.3g}") + f" (n={n}) |")
    if more:
        lines += ["", (f"Where the two chose different points, their valid {metric} on every "
                  "seed both have:"), "",
                  ("| dataset | method | seeds | grid's choice | tuning's choice | Δ mean | "
                  "paired p |"), "|---|---|---|---|---|---:|---|", *more]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("tune", help="the tuning's sweep folder or results.jsonl")
    p.add_argument("grid", help="the exhaustive grid's sweep folder or results.jsonl")
    p.add_argument("--seed", type=int, default=1, help="the tuning seed (default 1)")
    a = p.parse_args(argv)
    print(compare(a.tune, a.grid, a.seed), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
