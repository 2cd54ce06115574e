"""Table 2 from results.jsonl: samplers × datasets × test Recall/NDCG at the point chosen on valid.

Model selection (the paper tunes on validation, reports test; see notes §6.6):
  1. Rows of results.jsonl are grouped by table row (default the method, e.g. `sdns`) and dataset.
  2. In a group, each grid point (point_id: the run's config without the seed) is scored by its
     mean VALID `select` metric over the seeds that every point of the group has (with a full
     grid: all seeds; after a two-stage sweep: the tuning seed), and the best point is chosen.
     Test metrics never enter the choice.
  3. The cell is the chosen point's TEST mean ± sample std (ddof 1) over all its seeds.
  4. Per column, the strongest baseline (highest test mean among rows other than the proposed
     one) is underlined; the last row is the proposed row's relative improvement over it,
     (proposed − baseline) / baseline, with a paired t-test over the seeds the two chosen points
     share (scipy.stats.ttest_rel; 'n/a' with fewer than 2 shared seeds).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .config import label as param_label

DISPLAY = {"rns": "RNS", "irgan": "IRGAN", "advir": "AdvIR", "irgan-sgd": "IRGAN (SGD G)",
           "advir-sgd": "AdvIR (SGD G)", "dns": "DNS", "mixgcf": "MixGCF",
           # beyond the paper (issue 14), in the order of docs/samplers-and-models.md
           "dns-mn": "DNS(M,N)", "softmax-rho": "Softmax(ρ,N)", "ahns": "AHNS",
           "hard-bpr": "Hard-BPR", "sl": "SL", "sl-batch": "SL in-batch",
           "sl-batch-logq": "SL in-batch logQ", "sl-dns": "SL-DNS", "bsl": "BSL",
           "bsl-batch": "BSL in-batch", "bsl-batch-logq": "BSL in-batch logQ", "psl": "PSL",
           "sdns-mix": "SDNS-mix", "sdns": "SDNS"}
ORDER = list(DISPLAY)  # the paper's row order; unknown methods go before the proposed one


@dataclass
class Choice:
    """The grid point chosen on validation for one (row, dataset) group."""

    row: tuple
    dataset: str
    point_id: str
    runs: list[dict]
    """Result rows of the chosen point, one per seed."""
    score: float
    """Mean valid `select` metric over `seeds`."""
    seeds: tuple
    """The seeds the choice compared points on."""
    n_points: int
    """Grid points in the group."""
    n_pruned: int = 0
    """Grid points of the group whose runs were all pruned by `softbpr tune`: not candidates
    (pruned on a partial validation curve, with fewer epochs than the others)."""

    def test(self, metric: str) -> list[float]:
        return [r["test"][metric] for r in self.runs]

    def by_seed(self, metric: str) -> dict:
        return {r["seed"]: r["test"][metric] for r in self.runs}


def load_results(paths) -> list[dict]:
    """Finished rows (status ok) of results.jsonl files or of the sweep folders holding them.

    Each row gets `_root` (its sweep folder) so plots can find the run directory. A run listed
    twice (shards appending the same run, or two collected files of one folder that overlap) is
    kept once, the last row winning; a run is its folder, its study (the sweep's name) and its
    run directory, so two studies whose runs share a name (the same config rerun by another
    sweep) stay apart.
    """
    from .sweep import RESULTS, read_rows

    out: dict = {}
    where: dict = {}
    for p in ([paths] if isinstance(paths, (str, Path)) else paths):
        p = Path(p)
        f = p / RESULTS if p.is_dir() else p
        if not f.exists():
            raise FileNotFoundError(f"{f}: no {RESULTS} (run `softbpr sweep` first)")
        for n, r in read_rows(f, numbered=True):
            if r.get("status", "ok") != "ok" or not r.get("valid") or not r.get("test"):
                continue
            _check_row(r, f"{f}:{n}")
            r["_root"] = str(f.parent)
            key = (str(f.parent.resolve()), r.get("study"), r.get("run", id(r)))
            if key in out and (out[key]["valid"], out[key]["test"]) != (r["valid"], r["test"]):
                # not a plain repeat: two files that hold different runs under one name
                print(f"softbpr: note: {f}:{n} repeats run {r.get('run')} of {where[key]} with "
                      "other metrics; the later row is used (give the files in the order that "
                      "should win, or one of them)", file=sys.stderr)
            out[key], where[key] = r, f"{f}:{n}"
    return list(out.values())


def is_number(v) -> bool:
    """A JSON number (int or float, not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_row(r: dict, where: str) -> None:
    """A finished row has the shape the table reads (else a DataError naming file:line)."""
    from .data import DataError

    problem = None
    if not isinstance(r.get("seed"), int) or isinstance(r["seed"], bool):
        problem = f"seed {r['seed']!r} is not an integer" if "seed" in r else "no seed"
    for part in ("valid", "test"):
        if not isinstance(r[part], dict) or not all(map(is_number, r[part].values())):
            problem = f'"{part}" is not an object of metric: number ({json.dumps(r[part])[:60]})'
    for part in ("config", "labels", "point"):
        if not isinstance(r.get(part, {}), dict):
            problem = f'"{part}" is not an object'
    for key in ("run", "point_id", "dataset", "method", "model"):
        if isinstance(r.get(key), (list, dict)):
            problem = f'"{key}" is not a single value'
    if problem:
        raise DataError(f"{where}: damaged results row: {problem}; repair or delete the line "
                        "(`softbpr sweep` adds the row of a finished run again)")


def value(row: dict, key: str):
    """A row's value for a table key: top-level (method, model, dataset, seed), then its labels,
    then its flat config (pool_size, alpha, lr, ...)."""
    if key in row and not isinstance(row[key], dict):
        v = row[key]
    else:
        v = next((row[part][key] for part in ("labels", "config", "point")
                  if key in row.get(part, {})), None)
    return json.dumps(v) if isinstance(v, (list, dict)) else v  # (topk: a list) hashable


def key_names(rows: list[dict]) -> list[str]:
    """Every key `value` finds in some row: what a table's rows can be grouped by."""
    names: set = set()
    for r in rows:
        names |= {k for k, v in r.items() if not isinstance(v, dict) and not k.startswith("_")}
        for part in ("labels", "config", "point"):
            names |= set(r.get(part, {}))
    return sorted(names)


def find_row(rows, rows_by: tuple[str, ...], name: str):
    """The row (a tuple of `rows_by` values) that `name` names: its label in any case, or with
    one row key its value (`sdns`); None when no row does."""
    return next((row for row in rows if label(row, rows_by).lower() == name.lower()
                 or (len(row) == 1 and str(row[0]) == name)), None)


def point_of(row: dict) -> str:
    """The grid point a row (or a run) belongs to: its sweep `point_id`, else (a run trained
    outside a sweep) its flat `config` without the seed and device, as sorted JSON."""
    if row.get("point_id"):
        return row["point_id"]
    cfg = {k: v for k, v in row.get("config", {}).items() if k not in ("seed", "device")}
    return json.dumps(cfg, sort_keys=True, default=str)


def default_metric(rows: list[dict]) -> str:
    """The validation metric the runs early-stopped on (their config's `metric`)."""
    c = Counter(r.get("config", {}).get("metric", "ndcg@50") for r in rows)
    return c.most_common(1)[0][0] if c else "ndcg@50"


def row_keys(rows: list[dict], rows_by=("method",)) -> tuple[str, ...]:
    """`rows_by`, with `model` in front when the results hold several models."""
    rows_by = tuple(rows_by)
    if "model" not in rows_by and len({r.get("model") for r in rows}) > 1:
        rows_by = ("model", *rows_by)
    return rows_by


def select(rows: list[dict], metric: str | None = None,
           rows_by: tuple[str, ...] = ("method",)) -> dict[tuple, Choice]:
    """{(row key, dataset): Choice}: per group the point with the best mean valid `metric`.

    The row key follows row_keys(rows, rows_by): LightGCN and NGCF runs are never mixed. A point
    has one run per seed: the same point and seed from two studies (a second stage that reruns
    a first stage's point) count once, the later row winning, as in load_results."""
    metric = metric or default_metric(rows)
    rows_by = row_keys(rows, rows_by)
    by_seed: dict = {}
    for r in rows:
        key = (tuple(value(r, k) for k in rows_by), str(r.get("dataset")))
        by_seed.setdefault(key, {}).setdefault(point_of(r), {})[r["seed"]] = r
    groups = {key: {p: list(seeds.values()) for p, seeds in points.items()}
              for key, points in by_seed.items()}
    out = {}
    for (row, ds), every in groups.items():
        # a tuning's pruned trials are listed, not chosen (unless nothing else finished)
        points = {p: rs for p, rs in every.items()
                  if any(r.get("stop_reason") != "pruned" for r in rs)} or every
        points = {p: [r for r in rs if r.get("stop_reason") != "pruned"] or rs
                  for p, rs in points.items()}
        n_pruned = sum(all(r.get("stop_reason") == "pruned" for r in rs) for rs in every.values())
        for pid, runs in points.items():
            missing = [r["run"] for r in runs if metric not in r["valid"]]
            if missing:
                raise ValueError(f"valid metric {metric!r} missing in {missing[0]} (it has "
                                 f"{', '.join(runs[0]['valid'])})")
        common = set.intersection(*({r["seed"] for r in runs} for runs in points.values()))
        best = None
        for pid, runs in points.items():
            use = [r for r in runs if r["seed"] in common] or runs
            score = statistics.fmean(r["valid"][metric] for r in use)
            if best is None or score > best.score:
                best = Choice(row, ds, pid, sorted(runs, key=lambda r: r["seed"]), score,
                              tuple(sorted({r["seed"] for r in use})), len(every), n_pruned)
        out[(row, ds)] = best
    return out


def paired_test(a: dict, b: dict) -> tuple[float | None, int]:
    """Two-sided paired t-test p-value over the seeds in both {seed: value} maps, and n.

    None when n < 2 or the differences have no spread (t undefined)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None, len(seeds)
    diffs = [a[s] - b[s] for s in seeds]
    if statistics.stdev(diffs) <= 1e-12 * max(1e-12, *map(abs, diffs)):
        return None, len(seeds)  # identical differences: t is undefined (scipy warns, gives nan)
    from scipy.stats import ttest_rel

    p = float(ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return (None if math.isnan(p) else p), len(seeds)


def label(row: tuple, rows_by: tuple[str, ...]) -> str:
    parts = []
    for k, v in zip(rows_by, row):
        if k == "method":
            parts.append(DISPLAY.get(str(v), str(v)))
        elif k == "model":
            parts.append({"lightgcn": "LightGCN", "ngcf": "NGCF", "mf": "MF"}.get(v, str(v)))
        else:
            parts.append(f"{param_label(k)}={v}")
    return " ".join(parts)


def _sort_key(row: tuple, rows_by, proposed):
    def one(k, v):
        if k == "method":
            return (ORDER.index(v) if v in ORDER else -1, str(v))
        return (0, v) if isinstance(v, (int, float)) else (1, str(v))
    return (row == proposed, *[one(k, v) for k, v in zip(rows_by, row)])


def _mean_sd(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


@dataclass
class Table:
    """What `build_table` computed: enough to print Markdown and CSV."""

    rows_by: tuple
    metrics: list
    select_metric: str
    datasets: list
    rows: list
    choices: dict
    proposed: tuple | None
    strongest: dict  # (dataset, metric) -> row key
    improvement: dict  # (dataset, metric) -> (relative, p, n); relative None: baseline 0


def build_table(results: list[dict], metrics=("recall@50", "ndcg@50"), select_metric=None,
                rows_by=("method",), proposed: str | None = "sdns") -> Table:
    if not results:
        raise ValueError("no finished runs in the results")
    rows_by = row_keys(results, rows_by)
    select_metric = select_metric or default_metric(results)
    choices = select(results, select_metric, rows_by)
    datasets = list(dict.fromkeys(str(r.get("dataset")) for r in results))
    prop = None if proposed is None else find_row([row for row, _ in choices], rows_by, proposed)
    table_rows = sorted({row for row, _ in choices}, key=lambda r: _sort_key(r, rows_by, prop))
    strongest, improvement = {}, {}
    for ds in datasets:
        for m in metrics:
            base = [(statistics.fmean(c.test(m)), row) for (row, d), c in choices.items()
                    if d == ds and row != prop and m in c.runs[0]["test"]]
            if not base:
                continue
            strongest[(ds, m)] = max(base)[1]
            if prop is not None and (prop, ds) in choices:
                b = choices[(strongest[(ds, m)], ds)]
                pc = choices[(prop, ds)]
                bm = statistics.fmean(b.test(m))
                rel = (statistics.fmean(pc.test(m)) - bm) / bm if bm else None
                improvement[(ds, m)] = (rel, *paired_test(pc.by_seed(m), b.by_seed(m)))
    return Table(rows_by, list(metrics), select_metric, datasets, table_rows, choices, prop,
                 strongest, improvement)


def _cell(c: Choice | None, m: str) -> str:
    if c is None or m not in c.runs[0]["test"]:
        return "–"
    mean, sd = _mean_sd(c.test(m))
    return f"{mean:.4f} ± {sd:.4f}" if len(c.runs) > 1 else f"{mean:.4f}"


def _improvement_cell(v) -> str:
    if v is None:
        return "–"
    rel, p, n = v
    ptxt = "p n/a" if p is None else f"p={p:.3g}"
    return ("–" if rel is None else f"{rel * 100:+.2f}%") + f" ({ptxt}, n={n})"


def _pretty_metric(m: str) -> str:
    name, _, k = m.partition("@")
    return f"{'Recall' if name == 'recall' else 'NDCG'}@{k}"


def to_markdown(t: Table) -> str:
    head = ["Method"] + [f"{ds} {_pretty_metric(m)}" for ds in t.datasets for m in t.metrics]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in t.rows:
        cells = []
        for ds in t.datasets:
            for m in t.metrics:
                s = _cell(t.choices.get((row, ds)), m)
                cells.append(f"<u>{s}</u>" if t.strongest.get((ds, m)) == row else s)
        lines.append(f"| {label(row, t.rows_by)} | " + " | ".join(cells) + " |")
    if t.proposed is not None and t.improvement:
        cells = [_improvement_cell(t.improvement.get((ds, m))) for ds in t.datasets
                 for m in t.metrics]
        lines.append(f"| {label(t.proposed, t.rows_by)} vs <u>best baseline</u> | "
                     + " | ".join(cells) + " |")
    seeds = sorted({r["seed"] for c in t.choices.values() for r in c.runs})
    text = [
        f"{_MD_HEAD} {seeds}, each at the grid point with the best mean "
        f"validation {t.select_metric} (per row and dataset). <u>Underlined</u>: the strongest "
        "baseline of the column"
        + (f"; last row: relative improvement of {label(t.proposed, t.rows_by)} over it, with a "
           "paired t-test over the shared seeds (n)." if t.proposed is not None else "."),
        "", *lines, "", "Chosen configurations (on validation):", "",
        (f"| Method | dataset | valid {t.select_metric} | seeds compared | points | seeds | "
         "chosen point |"), "|---|---|---:|---|---:|---|---|"]
    for row in t.rows:
        for ds in t.datasets:
            c = t.choices.get((row, ds))
            if c is None:
                continue
            pt = {k: v for k, v in c.runs[0].get("point", {}).items()
                  if k not in ("data", "format", "columns", "split", "preset")}
            text.append(f"| {label(row, t.rows_by)} | {ds} | {c.score:.4f} | "
                        f"{','.join(map(str, c.seeds))} | {c.n_points}"
                        f"{f' ({c.n_pruned} pruned)' if c.n_pruned else ''} | "
                        f"{','.join(str(r['seed']) for r in c.runs)} | "
                        f"{' '.join(f'{k}={v}' for k, v in pt.items()) or '(fixed)'} |")
    return "\n".join(text) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", *t.rows_by, "dataset", "metric", "test_mean", "test_std", "n_seeds",
                "seeds", "strongest_baseline", "improvement", "p_value", "n_paired",
                "select_metric", "valid_score", "point_id", "point"])
    for row in t.rows:
        for ds in t.datasets:
            c = t.choices.get((row, ds))
            if c is None:
                continue
            for m in t.metrics:
                if m not in c.runs[0]["test"]:
                    continue
                mean, sd = _mean_sd(c.test(m))
                imp = t.improvement.get((ds, m)) if row == t.proposed else None
                w.writerow([label(row, t.rows_by), *row, ds, m, f"{mean:.6f}", f"{sd:.6f}",
                            len(c.runs), " ".join(str(r["seed"]) for r in c.runs),
                            int(t.strongest.get((ds, m)) == row),
                            "" if imp is None or imp[0] is None else f"{imp[0]:.6f}",
                            "" if imp is None or imp[1] is None else f"{imp[1]:.6g}",
                            "" if imp is None else imp[2], t.select_metric, f"{c.score:.6f}",
                            c.point_id, json.dumps(c.runs[0].get("point", {}))])
    return buf.getvalue()


_MD_HEAD = "Test metrics, mean ± std over seeds"  # to_markdown's first words


def _is_report(f: Path) -> bool:
    """Is f a file that `report` wrote (by its first line), so that writing it again loses
    nothing the user wrote?"""
    try:
        with open(f, encoding="utf-8") as fh:
            head = fh.readline().rstrip("\n")
    except (OSError, ValueError):
        return False
    if f.name.endswith(".csv"):
        return head.startswith("row,") and head.endswith(",valid_score,point_id,point")
    return head.startswith(_MD_HEAD + " ")


def report(paths, out: str | Path | None = None, overwrite: bool = False,
           **kw) -> tuple[Table, list[Path]]:
    """Build the table from results, write <out>.md and <out>.csv (default: beside the first
    results file, report.md/report.csv); returns the table and the files written.

    An existing <out>.md/.csv is replaced only when an earlier report wrote it (or overwrite);
    the default report.md/report.csv are always rewritten."""
    results = load_results(paths)
    t = build_table(results, **kw)
    first = Path(paths if isinstance(paths, (str, Path)) else paths[0])
    stem = Path(out) if out else (first if first.is_dir() else first.parent) / "report"
    if stem.suffix in (".md", ".csv"):  # --out table.md: table.md and table.csv
        stem = stem.with_suffix("")
    files = [Path(f"{stem}.md"), Path(f"{stem}.csv")]  # (not with_suffix: --out data.v2)
    for f in files:
        if out and not overwrite and f.exists() and not _is_report(f):
            raise FileExistsError(f"{f} exists and is not a softbpr report; choose another "
                                  "--out, or pass --overwrite to replace it")
    stem.parent.mkdir(parents=True, exist_ok=True)
    files[0].write_text(to_markdown(t))
    files[1].write_text(to_csv(t))
    return t, files


__all__ = [
    "Choice",
    "Table",
    "build_table",
    "find_row",
    "is_number",
    "key_names",
    "label",
    "load_results",
    "paired_test",
    "point_of",
    "report",
    "select",
    "to_csv",
    "to_markdown",
    "value",
]
