"""Collect a study's result rows from sweep folders into committed files: the rows, and every
row's run directory (config, history, result, sweep info: no model or state files) as a tarball.

    python bench/collect.py sweeps/table2-tuned sweeps/table2-tuned-tb2 --only dataset=taobao \\
        --out docs/results/table2-tuned-taobao

writes `<out>-results.jsonl` (the matching rows of each folder's results.jsonl, in order) and
`<out>-runs.tar.gz` (members `<folder name>/runs/<run>/...`, plus each folder's tune.json), so
that `softbpr report`, `bench/paired.py`, `bench/study_check.py --results` and the per-epoch
claims all regenerate from the two files. --only KEY=VALUE (repeatable) matches a row's
top-level value, label or flat config value as `softbpr report --rows` reads it (e.g. dataset,
method, model, lr); a key given twice matches either value, as in `softbpr sweep --only`.
Existing output files are replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

from softbpr.report import value
from softbpr.rundir import HEAVY, run_of_row
from softbpr.sweep import parse_only, read_rows


def collect(folders: list[Path], only: dict) -> list[tuple[Path, dict]]:
    """(folder, row) for every row of the folders' results.jsonl that matches `only` (key ->
    values, as sweep.parse_only: every key, one of its values)."""
    out = []
    for f in folders:
        res = f / "results.jsonl"
        if not res.exists():
            raise SystemExit(f"{res}: no such file (run `softbpr sweep` or `tune` first)")
        out += [(f, r) for r in read_rows(res)
                if all(any(str(value(r, k)) == str(w) for w in v) for k, v in only.items())]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="sweep folders")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", required=True, help="output prefix, e.g. docs/results/NAME")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    rows = collect(a.folders, parse_only(a.only))
    if not rows:
        raise SystemExit(f"no rows match --only {' '.join(a.only)} in {a.folders}")
    res, tar = Path(f"{a.out}-results.jsonl"), Path(f"{a.out}-runs.tar.gz")
    if not a.overwrite and (clash := [p for p in (res, tar) if p.exists()]):
        raise SystemExit(f"{clash[0]} exists; pass --overwrite to replace it")
    runs = []
    for f, r in rows:
        rd = run_of_row([f], r["run"])
        if rd is None or not rd.history_path.exists():
            raise SystemExit(f"{f}: no run directory with a history.jsonl for the row of "
                             f"{r['run']}")
        runs.append((f, rd.path))
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text("".join(json.dumps(r) + "\n" for _, r in rows))
    with tarfile.open(tar, "w:gz") as tf:
        for f, d in dict.fromkeys(runs):
            for p in sorted(d.iterdir()):
                if p.is_file() and p.name not in HEAVY:
                    tf.add(p, arcname=f"{f.name}/runs/{d.name}/{p.name}")
        for f in dict.fromkeys(f for f, _ in rows):
            if (f / "tune.json").exists():
                tf.add(f / "tune.json", arcname=f"{f.name}/tune.json")
    print(f"{len(rows)} rows -> {res}; {len(dict.fromkeys(runs))} runs -> {tar}", file=sys.stderr)


if __name__ == "__main__":
    main()
