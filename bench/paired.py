"""Paired two-sided t-tests over seeds between methods' validation-chosen points.

    python bench/paired.py docs/results/table2-tuned-all-results.jsonl softmax-rho:dns sl:rns ...

Each A:B compares method A's chosen point (the one `softbpr report` picks on validation, per
dataset) with B's on the test metrics, over the seeds both have (report.paired_test).
--dataset picks the dataset (default: every dataset both have). --rows groups by other config
keys than the method, as `softbpr report --rows`; a row is then named by its values joined by
"/", e.g. `--rows n_negatives,tau 256/0.05:32/0.05`. `--also FILE` reads more results files
with the first; `--rows method,study` then tells a study's rows from its rerun's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from softbpr.report import load_results, paired_test, select


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--also", action="append", default=[], metavar="RESULTS",
                    help="more results files, read with the first (e.g. a rerun of a study)")
    ap.add_argument("pairs", nargs="+", metavar="A:B")
    ap.add_argument("--metrics", default="recall@50,ndcg@50")
    ap.add_argument("--dataset")
    ap.add_argument("--rows", default="method", help="config keys of a row (default: method)")
    a = ap.parse_args(argv)
    chosen = {}
    rows_by = tuple(a.rows.split(","))
    files = [Path(f) for f in (a.results, *a.also)]
    for (row, ds), c in select(load_results(files), rows_by=rows_by).items():
        chosen[("/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row), ds)] = c
    datasets = sorted({ds for _, ds in chosen} if a.dataset is None else {a.dataset})
    rows = sorted({r for r, _ in chosen})
    for pair in a.pairs:
        m1, _, m2 = pair.partition(":")
        unknown = [m for m in (m1, m2) if m not in rows]
        if unknown:  # a typo must not print nothing
            sys.exit(f"paired.py: {pair}: no row {', '.join(map(repr, unknown))} in "
                     f"{', '.join(map(str, files))} (rows by {a.rows}: {', '.join(rows)})")
        for ds in datasets:
            if (m1, ds) not in chosen or (m2, ds) not in chosen:
                continue
            parts = []
            for k in a.metrics.split(","):
                x = {r["seed"]: r["test"][k] for r in chosen[(m1, ds)].runs}
                y = {r["seed"]: r["test"][k] for r in chosen[(m2, ds)].runs}
                s = sorted(set(x) & set(y))
                if not s:
                    parts.append(f"{k} no seed in common")
                    continue
                xs, ys = [x[i] for i in s], [y[i] for i in s]
                p = paired_test(x, y)[0]
                # no test with one seed (or differences without spread): say so, not "nan"
                pt = "no test" if p is None else f"p={p:.2g}"
                parts.append(f"{k} {sum(xs) / len(s):.4f} vs {sum(ys) / len(s):.4f} "
                             f"({(sum(xs) / sum(ys) - 1) * 100:+.1f}%, {pt}, n={len(s)})")
            print(f"{ds} {m1} vs {m2}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
