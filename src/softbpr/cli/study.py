"""Studies: `softbpr sweep | report | plot` (see sweep.py, report.py, plots.py and
docs/studies.md)."""

from __future__ import annotations

import argparse

from .args import metrics as metric_list
from .args import minutes, positive_int
from .args import seeds as seed_list

SWEEP_EPILOG = """\
examples:
  softbpr sweep configs/sweep-table2.toml --dry-run        # list the runs and what is done
  softbpr sweep configs/sweep-table2.toml                  # run; rerun the same to resume
  softbpr sweep configs/sweep-table2.toml --quick          # every study in seconds (CI)
  softbpr sweep configs/sweep-table2.toml --seeds 1        # stage 1: tune on one seed
  softbpr sweep configs/sweep-table2.toml --seeds 2,3 --best   # stage 2: seeds for the chosen
  softbpr sweep configs/sweep-fig5.toml --only data=gowalla --set device=cuda"""


def add_parsers(sub) -> None:
    s = sub.add_parser("sweep", help="run a sweep file: base config x grid x seeds, resumable",
                       epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file", metavar="SWEEP.toml")
    s.add_argument("--quick", action="store_true", help="synthetic-small, 2 epochs, first grid "
                   "value, first seed; writes to <out>-quick")
    s.add_argument("--seeds", type=seed_list, help="training seeds, e.g. 1,2,3 (replaces the "
                   "file's)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (repeatable), e.g. device=cuda")
    s.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only matching runs (repeatable: every key must match, a key given "
                        "twice matches either value), e.g. preset=sdns, data=gowalla")
    s.add_argument("--best", action="store_true", help="run only the grid points chosen on "
                   "validation so far (per method and dataset), e.g. to add seeds to them")
    s.add_argument("--out", help="sweep folder (default: the file's [sweep] out)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and their state; "
                   "train nothing")
    s.add_argument("--retry-failed", action="store_true", help="rerun runs that diverged")
    s.add_argument("--verbose", action="store_true", help="per-epoch lines of every run")
    s.add_argument("--shard", metavar="K/N", type=_shard, help="run only every N-th run of the "
                   "sweep (after --only), from the K-th (1 <= K <= N), to split a sweep over "
                   "processes or machines; finished runs are skipped as usual")
    s.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="run N shards at "
                   "once as subprocesses (e.g. several runs sharing one GPU); OMP_NUM_THREADS "
                   "defaults to 1 in each")
    s.add_argument("--budget", type=minutes, default=0.0, metavar="MINUTES", help="wall-clock "
                   "budget: no run starts with under half a minute left (it stays pending), "
                   "and each run's train.time_limit is capped at what is left")
    s.set_defaults(run=sweep)
    r = sub.add_parser("report", help="Table 2 from results.jsonl: test metrics at the "
                                      "validation-chosen point, mean +- std, paired t-test")
    r.add_argument("results", nargs="+", metavar="RESULTS", help="results.jsonl or sweep folder")
    r.add_argument("--metrics", type=metric_list, help="test metrics (columns; default "
                   "recall@K,ndcg@K with K the largest cut-off of the results)")
    r.add_argument("--select", help="valid metric for choosing a point (default: the runs' "
                                    "early-stopping metric)")
    r.add_argument("--rows", default="method", help="row keys, e.g. method or method,pool_size")
    r.add_argument("--proposed", help="row compared to the strongest baseline (default: sdns "
                                      "when there is one; 'none' for no improvement row)")
    r.add_argument("--out", help="output path without suffix (default: <sweep>/report)")
    r.add_argument("--overwrite", action="store_true", help="replace existing --out files that "
                   "are not softbpr reports (earlier reports are always replaced)")
    r.set_defaults(run=report)
    g = sub.add_parser("plot", help="figures from run directories (needs matplotlib)")
    g.add_argument("paths", nargs="+", metavar="PATH", help="sweep folder(s), run dirs, "
                                                            "or a results.jsonl")
    g.add_argument("--kind", default="all", help="all | curves | vs-H | vs-alpha | diagnostics "
                                                 "| delta-hist (comma-separated)")
    g.add_argument("--metrics", type=metric_list,
                   help="metrics (default recall@K,ndcg@K, K = the largest topk)")
    g.add_argument("--epoch", type=int, help="epoch of the Δ histogram (default: last)")
    g.add_argument("--best", action="store_true", default=None, help="only the validation-"
                   "chosen point per method and dataset (automatic above 12 lines per panel)")
    g.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config matches (repeatable; a key given twice matches "
                        "either value), e.g. model=ngcf")
    g.add_argument("--out", help="output folder (default: <first path>/plots)")
    g.set_defaults(run=plot)
    from .. import tune  # its flags live beside the tuner

    tune.add_parser(sub)
    sub.choices["tune"].set_defaults(run=tune.run)


def _shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"must be K/N with 1 <= K <= N, got {text!r}")
    return int(k), int(n)


def sweep(args) -> int:
    import sys

    from ..config import ConfigError
    from ..report import load_results, select
    from ..sweep import (
        expand,
        filter_runs,
        load_sweep,
        parse_assignments,
        parse_only,
        results_path,
        run_jobs,
        run_sweep,
        status,
    )
    from . import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated

    seeds = args.seeds
    sw = load_sweep(args.file, quick=args.quick, seeds=seeds,
                    overrides=parse_assignments(args.set), out=args.out)
    if args.jobs > 1 and not args.dry_run:
        if args.shard:
            raise ConfigError("--jobs and --shard cannot be combined")
        return run_jobs(args.file, args.jobs, results_path(sw), quick=args.quick, seeds=seeds,
                        overrides=args.set, only=args.only, out=args.out, best=args.best,
                        retry_failed=args.retry_failed, verbose=args.verbose,
                        budget_minutes=args.budget)
    specs = filter_runs(expand(sw, args.file), parse_only(args.only))
    if args.best:  # before --shard: the shards split the chosen runs, not the whole grid
        res = results_path(sw)
        if not res.exists():
            raise ConfigError(f"--best needs earlier results in {res}")
        chosen = {c.point_id for c in select(load_results(res)).values()}
        specs = [s for s in specs if s.point_id in chosen]
    if args.shard:
        k, n = args.shard
        specs = specs[k - 1::n]
    states = [status(sw, s) for s in specs]
    counts = {k: states.count(k) for k in ("done", "failed", "resumable", "pending")}
    print(f"sweep {sw.name}: {len(specs)} runs -> {sw.out} ("
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ")", flush=True)
    if args.dry_run:
        for s, st in zip(specs, states):
            print(f"  {st:9s} {s.name}")
        return 0
    try:
        run_sweep(sw, specs, log=lambda m: print(m, flush=True),
                  retry_failed=args.retry_failed, verbose=args.verbose,
                  budget_minutes=args.budget)
    except (KeyboardInterrupt, Terminated) as e:
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"softbpr: {what}; rerun the same command to resume ({sw.out})", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    print(f"results: {results_path(sw)}")
    return 0


def report(args) -> int:
    from ..config import ConfigError
    from ..report import find_row, key_names, label, load_results, row_keys, to_markdown, value
    from ..report import report as make_report

    rows = load_results(args.results)
    metrics = args.metrics or default_metrics(rows)
    for flag, names, part in (("--metrics", metrics, "test"),
                              ("--select", [args.select] if args.select else [], "valid")):
        have = sorted(set().union(*(r[part] for r in rows))) if rows else []
        if rows and (bad := [m for m in names if m not in have]):
            raise ConfigError(f"{flag}: {', '.join(bad)} not measured in these results; choose "
                              f"among {', '.join(have)}")
    rows_by = tuple(args.rows.split(","))
    if rows and (bad := [k for k in rows_by if k not in key_names(rows)]):
        raise ConfigError(f"--rows: {', '.join(map(repr, bad))} not a key of these results; "
                          f"choose among {', '.join(key_names(rows))}")
    if rows and args.proposed not in (None, "none"):
        keys = row_keys(rows, rows_by)
        have = list(dict.fromkeys(tuple(value(r, k) for k in keys) for r in rows))
        if find_row(have, keys, args.proposed) is None:
            raise ConfigError(f"--proposed {args.proposed}: no such row; choose among "
                              f"{', '.join(label(h, keys) for h in have)} (or none)")
    proposed = "sdns" if args.proposed is None else args.proposed
    t, files = make_report(args.results, args.out, overwrite=args.overwrite, metrics=metrics,
                           select_metric=args.select, rows_by=rows_by,
                           proposed=None if proposed == "none" else proposed)
    print(to_markdown(t))
    print("-> " + ", ".join(map(str, files)))
    return 0


def default_metrics(rows: list[dict]) -> list[str]:
    """recall@K, ndcg@K at the largest K the results measured (K = 50 when there are none)."""
    ks = [int(m.split("@")[1]) for r in rows for m in r["test"] if m.startswith("recall@")]
    k = max(ks, default=50)
    return [f"recall@{k}", f"ndcg@{k}"]


def plot(args) -> int:
    from ..plots import plot_all
    from ..sweep import parse_only

    files = plot_all(args.paths, args.out, args.kind.split(","),
                     args.metrics, args.epoch,
                     args.best, only=parse_only(args.only))
    for f in files:
        print(f)
    return 0
