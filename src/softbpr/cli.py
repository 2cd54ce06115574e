"""Command line: `softbpr train | evaluate | recommend | export`.

`main(argv) -> exit code`; no work at import time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__

# flag -> help; the flag names are a public interface (scripts rely on them)
TRAIN_FLAGS: list[tuple[str, type, str]] = [
    ("--data", str, "built-in dataset (synthetic, synthetic-small) or a path; default synthetic"),
    ("--format", str, "auto | lightgcn | csv | recbole | parquet"),
    ("--split", str, "given | temporal | random (default: given for LightGCN folders, temporal "
                     "when timestamps exist, else random)"),
    ("--columns", str, "column names of a delimited file, e.g. user,item,rating,timestamp"),
    ("--kcore", int, "k-core filter on users and items (delimited files)"),
    ("--valid-ratio", float, "per-user validation share (default 0.1)"),
    ("--test-ratio", float, "per-user test share (default 0.1)"),
    ("--data-seed", int, "seed of the synthetic data and random splits (default 2024)"),
    ("--model", str, "lightgcn | ngcf | mf"),
    ("--preset", str, "rns | dns | sdns | sdns-mix | mixgcf | irgan | advir: a sampler + loss "
                      "pair (default sdns)"),
    ("--sampler", str, "uniform | dns | mixgcf | irgan | advir (overrides the preset)"),
    ("--loss", str, "bpr | soft_bpr | mixed_bpr | adv_bpr (overrides the preset)"),
    ("--pool-size", int, "H: DNS / MixGCF candidates per positive (default 16)"),
    ("--alpha", float, "α of soft/mixed BPR, in [0, 1); soft factor τ = 1-α (default 0.9)"),
    ("--temperature", float, "irgan/advir: negatives ~ softmax(generator score / T) (default 0.2)"),
    ("--gen-dim", int, "irgan/advir: generator embedding size (default 64)"),
    ("--gen-lr", float, "irgan/advir: generator Adam learning rate (default 1e-3)"),
    ("--gen-samples", int, "irgan/advir: generator draws per positive (default 2)"),
    ("--gen-epochs", int, "irgan/advir: generator epochs between training epochs (default 1)"),
    ("--gen-pretrain-epochs", int, "irgan/advir: DNS pre-training epochs of the generator "
                                   "(default 10)"),
    ("--eps", float, "adv_bpr (AdvIR): L2 norm ε of the adversarial perturbation (default 0.01)"),
    ("--adv-weight", float, "adv_bpr (AdvIR): weight of the adversarial term (default 1)"),
    ("--lr", float, "Adam learning rate (default 1e-3)"),
    ("--reg", float, "L2 weight λ on the batch's layer-0 embeddings (default 1e-4)"),
    ("--dim", int, "embedding size (default 64)"),
    ("--layers", int, "LightGCN / NGCF layers (default 3)"),
    ("--init", str, "xavier | normal"),
    ("--mess-dropout", float, "ngcf: message dropout rate (default 0; NGCF's code 0.1)"),
    ("--node-dropout", float, "ngcf: node (adjacency entry) dropout rate (default 0)"),
    ("--ngcf-variant", str, "ngcf: original (the NGCF authors' code) | mixgcf (MixGCF's port)"),
    ("--batch-size", int, "training pairs per step (default 2048)"),
    ("--epochs", int, "maximum epochs"),
    ("--eval-every", int, "validate every N epochs"),
    ("--patience", int, "evaluations without improvement before stopping (0 = never)"),
    ("--topk", str, "cut-offs, e.g. 20,50"),
    ("--metric", str, "validation metric for early stopping (default ndcg@50)"),
    ("--seed", int, "training seed (default 2020)"),
    ("--device", str, "auto | cpu | cuda | cuda:N"),
    ("--checkpoint-every", int, "write the resumable training state every N epochs (default 1)"),
    ("--max-batches", int, "cap on batches per epoch, for smoke tests (default 0 = full epochs)"),
    ("--time-limit", float, "training budget in minutes: stop after the epoch that passes it, "
                            "keep the best weights (default 0 = none)"),
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softbpr", description="Train and evaluate graph "
                                "recommenders with hard negative sampling and the soft BPR loss.")
    p.add_argument("--version", action="version", version=f"softbpr {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train; flags override the --config file, which overrides "
                                   "the defaults.")
    t.add_argument("--config", help="TOML experiment file")
    for flag, typ, help_ in TRAIN_FLAGS:
        t.add_argument(flag, type=typ, default=None, help=help_)
    t.add_argument("--out", help="run directory (default runs/<data>-<model>-<method>-s<seed>-"
                                 "<time>)")
    t.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its "
                   "state.pt, with its own config.json (no other config flags)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    e = sub.add_parser("evaluate", help="recompute valid/test metrics from a run's checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--topk", default=None, help="cut-offs (default: the run's)")
    e.add_argument("--device", default="auto")
    _add_use_commands(sub)
    _add_data_commands(sub)
    _add_study_commands(sub)
    return p


def _busy_cpu_warning() -> str | None:
    """A warning when torch will use several threads on CPUs other processes keep busy: OpenMP
    threads then wait on each other, and an epoch measured here took 25x longer (2 threads, 2
    cores, one of them busy). None when there is nothing to say."""
    import os

    import torch

    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    if threads < 2 or "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    if load < 0.75 * cores:
        return None
    return (f"softbpr: note: the CPUs are busy (load average {load:.1f} on {cores} cores) and "
            f"torch uses {threads} threads; if epochs are slow, set OMP_NUM_THREADS to the number "
            f"of free cores (e.g. OMP_NUM_THREADS=1)")


def _train(args) -> int:
    import os

    from .config import ConfigError, Experiment, load
    from .trainer import fit

    flat = {f.lstrip("-").replace("-", "_"): getattr(args, f.lstrip("-").replace("-", "_"))
            for f, _, _ in TRAIN_FLAGS}
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 checks --out
    if args.resume:
        given = [k for k, v in flat.items() if v is not None] + (["config"] if args.config else [])
        if given:
            raise ConfigError(f"--resume continues a run with its own config.json; drop "
                              f"{', '.join('--' + g.replace('_', '-') for g in given)}")
        out = Path(args.resume)
        cfg_path = out / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"{cfg_path}: not a run directory")
        if (out / "result.json").exists():
            raise FileExistsError(f"{out} already finished (result.json exists)")
        cfg = json.loads(cfg_path.read_text())
        exp = Experiment.from_dict({k: cfg[k] for k in ("data", "model", "sampler", "loss",
                                                         "train", "eval")})
    else:
        exp = load(args.config, flat)
        if args.out:
            out = Path(args.out)
            if main_rank and out.exists() and any(out.iterdir()) and not args.overwrite:
                raise FileExistsError(f"{out} exists and is not empty; choose another --out or "
                                      "pass --overwrite")
        else:
            name = Path(exp.data.data).name or "data"
            out = Path("runs") / (f"{name}-{exp.model.name}-{exp.method}-s{exp.train.seed}-"
                                  f"{time.strftime('%Y%m%d-%H%M%S')}")
    quiet = args.quiet or not main_rank
    log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    if main_rank:
        print(f"softbpr {__version__}: {exp.model.name} + {exp.method} on {exp.data.data} -> "
              f"{out}", flush=True)
        if (note := _busy_cpu_warning()) is not None:  # stdout: stderr is for errors only
            print(note, flush=True)
    import signal

    def _terminate(signum, frame):  # SIGTERM -> unwind normally: temp files are removed
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        run = fit(exp, out_dir=out, log=log, progress=not quiet and sys.stderr.isatty(),
                  resume=bool(args.resume))
    finally:
        from .distributed import teardown

        teardown()
    k = max(exp.eval.topk)
    if main_rank:
        print(f"test recall@{k} {run.test[f'recall@{k}']:.4f}  ndcg@{k} "
              f"{run.test[f'ndcg@{k}']:.4f}  (best epoch {run.best_epoch}, {run.seconds:.0f}s) -> "
              f"{out}")
    return 0


def _evaluate(args) -> int:
    from .checkpoint import load_checkpoint
    from .graph import InteractionGraph
    from .seeding import pick_device
    from .trainer import evaluate_model

    dev = pick_device(args.device)
    exp, model, split, ck = load_checkpoint(args.run_dir, dev)
    ks = [int(x) for x in args.topk.split(",")] if args.topk else list(exp.eval.topk)
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, dev)
    out = {"best_epoch": ck["epoch"]}
    for which in ("valid", "test"):
        if len(getattr(split, which)):
            out[which] = {k: v for k, v in evaluate_model(model, graph, split, which, ks,
                                                          exp.eval.batch_users).items()
                          if k != "users"}
    print(json.dumps(out, indent=2))
    saved = Path(args.run_dir) / "result.json"
    if saved.exists() and not args.topk:
        ref = json.loads(saved.read_text())
        diffs = [abs(ref[w][k] - out[w][k]) for w in ("valid", "test") if w in out and w in ref
                 for k in out[w] if k in ref[w]]
        if diffs:
            print(f"max |difference| to result.json: {max(diffs):.2e}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data import DataError
    from .trainer import TrainingDiverged

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "recommend":
            return _recommend(args)
        if args.command == "export":
            return _export(args)
        if args.command == "data":
            return _data(args)
        if args.command in ("sweep", "report", "plot"):
            return _study(args)
    except TrainingDiverged as e:
        print(f"softbpr: training diverged: {e}", file=sys.stderr)
        return 3
    except (ConfigError, DataError, FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"softbpr: error: {msg}", file=sys.stderr)
        return 2
    return 2


# ----------------------------------------------------------------------------------------------
# Using a trained model: recommend, export (see recommend.py)

RECOMMEND_EPILOG = """\
exit status: 0 when every user was served (known, or unknown with --fallback popular);
1 when some users are unknown and no fallback was asked (the known users are still printed);
2 on other errors. Ids are the data file's own ids; "42" matches the integer id 42."""


def _add_use_commands(sub) -> None:
    r = sub.add_parser("recommend", help="top-K unseen items per user from a run's checkpoint",
                       epilog=RECOMMEND_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("run_dir")
    r.add_argument("--user", action="append", default=[], metavar="ID",
                   help="external user id (repeatable)")
    r.add_argument("--users-file", metavar="F",
                   help="file with one user id per line ('-' = stdin; blank lines skipped)")
    r.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    r.add_argument("--include-seen", action="store_true",
                   help="keep the user's training items (default: excluded)")
    r.add_argument("--fallback", choices=["popular"], default=None,
                   help="for unknown users: the items with the most training interactions")
    r.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="output format (default table)")
    r.add_argument("--device", default="auto")
    x = sub.add_parser("export", help="write final user/item embeddings with external ids",
                       description="FILE.npz: arrays user_ids, item_ids, user_embeddings, "
                                   "item_embeddings. FILE.parquet: FILE.users.parquet and "
                                   "FILE.items.parquet with columns id, embedding (needs "
                                   "pyarrow).")
    x.add_argument("run_dir")
    x.add_argument("--out", required=True, metavar="FILE", help="a .npz or .parquet file name")
    x.add_argument("--device", default="auto")


def _read_user_ids(args) -> list[str]:
    ids = list(args.user)
    if args.users_file:
        fh = sys.stdin if args.users_file == "-" else open(args.users_file, encoding="utf-8")
        with fh:
            ids += [ln.strip() for ln in fh if ln.strip()]
    if not ids:
        raise ValueError("no users: give --user ID (repeatable) or --users-file F")
    return ids


def _print_recs(recs, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([r.to_dict() for r in recs], indent=2))
        return
    rows = [(str(r.user), str(n), str(it), f"{s:.4f}", r.source)
            for r in recs for n, (it, s) in enumerate(zip(r.items.tolist(), r.scores), 1)]
    head = ("user", "rank", "item", "score", "source")
    if fmt == "csv":
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)
        return
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]
    for row in (head, *rows):
        print("  ".join(c.ljust(wd) if j != 3 else c.rjust(wd)
                        for j, (c, wd) in enumerate(zip(row, widths))).rstrip())


def _recommend(args) -> int:
    from .recommend import load

    ids = _read_user_ids(args)
    rec = load(args.run_dir, args.device)
    unknown = [u for u in ids if not rec.has_user(u)]
    served = ids if args.fallback else [u for u in ids if rec.has_user(u)]
    recs = rec.recommend(served, k=args.k, exclude_seen=not args.include_seen,
                         fallback=args.fallback) if served else []
    _print_recs(recs, args.format)
    if not unknown:
        return 0
    names = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    if args.fallback:
        print(f"softbpr: {len(unknown)} unknown user(s) got popular items: {names}",
              file=sys.stderr)
        return 0
    print(f"softbpr: error: {len(unknown)} unknown user(s) (no training interactions in this "
          f"run): {names}; pass --fallback popular to serve them popular items", file=sys.stderr)
    return 1


def _export(args) -> int:
    from .recommend import load

    rec = load(args.run_dir, args.device)
    try:
        files = rec.export(args.out)
    except ModuleNotFoundError as e:
        print(f"softbpr: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(rec.user_ids):,} users, {len(rec.item_ids):,} items, dim "
          f"{rec.user_embeddings.shape[1]} -> {', '.join(str(f) for f in files)}")
    return 0


# ----------------------------------------------------------------------------------------------
# Datasets: list, fetch, prepare, info (see catalog.py, prepare.py and docs/data.md)

DATA_EPILOG = """\
examples:
  softbpr data list
  softbpr data fetch ml-100k
  softbpr data fetch taobao --from ~/Downloads/UserBehavior.csv.zip
  softbpr data prepare ml-100k --out data/ml-100k
  softbpr data prepare path/to/log.csv --columns user,item,behavior,timestamp --out data/mine
  softbpr data info data/ml-100k
  softbpr train --data data/ml-100k
The cache folder is $SOFTBPR_DATA (default: the user's cache folder + softbpr)."""


def _add_data_commands(sub) -> None:
    d = sub.add_parser("data", help="list, fetch and prepare datasets", epilog=DATA_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = d.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="the known datasets: size, counts, whether cached")
    f = dsub.add_parser("fetch", help="download a known dataset into the cache, verified")
    f.add_argument("name")
    f.add_argument("--from", dest="source", metavar="PATH_OR_URL",
                   help="a local copy (the file, or a folder holding it) or a mirror URL")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    p = dsub.add_parser("prepare", help="the paper's preprocessing + split -> a folder that "
                                        "`softbpr train --data DIR` reads")
    p.add_argument("source", metavar="NAME|PATH", help="a cached dataset name or a file/folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="auto", help="auto | lightgcn | csv | recbole | parquet")
    p.add_argument("--columns", help="column names of a file without header, e.g. "
                                     "user,item,behavior,timestamp")
    p.add_argument("--positives", help="behaviour values that count as positives, e.g. buy,cart "
                                       "(default: all)")
    p.add_argument("--min-rating", type=float, help="drop rows rated below this")
    p.add_argument("--user-core", type=int, default=10,
                   help="keep users with at least this many items (default 10; 0 = off)")
    p.add_argument("--item-core", type=int, default=0, help="also filter items (default 0 = off)")
    p.add_argument("--users", type=int, dest="n_users", help="random subset of this many users")
    p.add_argument("--split", default="temporal", help="temporal (default) | random | given")
    p.add_argument("--valid-ratio", type=float, default=0.1)
    p.add_argument("--test-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=2024, help="user subset / random split seed")
    p.add_argument("--name", help="dataset name in summary.json (default: from the source)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    i = dsub.add_parser("info", help="the Table 1 row (users, items, interactions, density)")
    i.add_argument("path", metavar="DIR|PATH")
    i.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    from . import synth

    synth.add_parser(dsub)


def _data(args) -> int:
    from . import catalog
    from .prepare import PrepareConfig, info, prepare

    if args.data_command == "list":
        rows = catalog.table()
        print(f"cache: {catalog.data_home()}")
        head = ("name", "size", "users", "items", "interactions", "cached")
        widths = [max(len(str(r[h])) for r in [dict(zip(head, head))] + rows) for h in head]
        for r in [dict(zip(head, head))] + rows:
            print("  ".join(str(r[h]).rjust(w) if 0 < k < 5 else str(r[h]).ljust(w)
                            for k, (h, w) in enumerate(zip(head, widths))).rstrip())
        return 0
    if args.data_command == "fetch":
        catalog.fetch(args.name, args.source, quiet=args.quiet or not sys.stderr.isatty())
        return 0
    if args.data_command == "prepare":
        cfg = PrepareConfig(
            positives=tuple(args.positives.split(",")) if args.positives else None,
            min_rating=args.min_rating, user_core=args.user_core, item_core=args.item_core,
            n_users=args.n_users, seed=args.seed, split=args.split,
            valid_ratio=args.valid_ratio, test_ratio=args.test_ratio)
        prepare(args.source, args.out, cfg, fmt=args.format, columns=args.columns,
                name=args.name, overwrite=args.overwrite)
        return 0
    if args.data_command == "synth":
        from . import synth

        return synth.run(args)
    if args.data_command == "info":
        s = info(args.path)
        if args.json:
            print(json.dumps(s, indent=2))
            return 0
        c = s["counts"]
        head = ("Dataset", "User", "Item", "Interaction", "Density")
        row = (s["name"], f"{c['users']:,}", f"{c['items']:,}", f"{c['interactions']:,}",
               f"{c['density']:.5f}")
        widths = [max(len(a), len(b)) for a, b in zip(head, row)]
        for r in (head, row):
            print("  ".join(x.ljust(w) if k == 0 else x.rjust(w)
                            for k, (x, w) in enumerate(zip(r, widths))))
        print(f"train {c['train']:,} / valid {c['valid']:,} / test {c['test']:,}")
        return 0
    return 2


# ----------------------------------------------------------------------------------------------
# Studies: sweep, report, plot (see sweep.py, report.py, plots.py and docs/studies.md)

SWEEP_EPILOG = """\
examples:
  softbpr sweep configs/sweep-table2.toml --dry-run        # list the runs and what is done
  softbpr sweep configs/sweep-table2.toml                  # run; rerun the same to resume
  softbpr sweep configs/sweep-table2.toml --quick          # every study in seconds (CI)
  softbpr sweep configs/sweep-table2.toml --seeds 1        # stage 1: tune on one seed
  softbpr sweep configs/sweep-table2.toml --seeds 2,3 --best   # stage 2: seeds for the chosen
  softbpr sweep configs/sweep-fig5.toml --only data=gowalla --set device=cuda"""


def _add_study_commands(sub) -> None:
    s = sub.add_parser("sweep", help="run a sweep file: base config x grid x seeds, resumable",
                       epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file", metavar="SWEEP.toml")
    s.add_argument("--quick", action="store_true", help="synthetic-small, 2 epochs, first grid "
                   "value, first seed; writes to <out>-quick")
    s.add_argument("--seeds", help="training seeds, e.g. 1,2,3 (replaces the file's)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (repeatable), e.g. device=cuda")
    s.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only matching runs (repeatable), e.g. preset=sdns, data=gowalla")
    s.add_argument("--best", action="store_true", help="run only the grid points chosen on "
                   "validation so far (per method and dataset), e.g. to add seeds to them")
    s.add_argument("--out", help="sweep folder (default: the file's [sweep] out)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and their state; "
                   "train nothing")
    s.add_argument("--retry-failed", action="store_true", help="rerun runs that diverged")
    s.add_argument("--verbose", action="store_true", help="per-epoch lines of every run")
    s.add_argument("--shard", metavar="K/N", help="run only every N-th run of the sweep (after "
                   "--only), from the K-th (1 <= K <= N), to split a sweep over processes or "
                   "machines; finished runs are skipped as usual")
    s.add_argument("--jobs", type=int, default=1, metavar="N", help="run N shards at once as "
                   "subprocesses (e.g. several runs sharing one GPU); OMP_NUM_THREADS defaults "
                   "to 1 in each")
    s.add_argument("--budget", type=float, default=0.0, metavar="MINUTES", help="wall-clock "
                   "budget: no run starts with under half a minute left (it stays pending), "
                   "and each run's train.time_limit is capped at what is left")
    r = sub.add_parser("report", help="Table 2 from results.jsonl: test metrics at the "
                                      "validation-chosen point, mean +- std, paired t-test")
    r.add_argument("results", nargs="+", metavar="RESULTS", help="results.jsonl or sweep folder")
    r.add_argument("--metrics", default="recall@50,ndcg@50", help="test metrics (columns)")
    r.add_argument("--select", help="valid metric for choosing a point (default: the runs' "
                                    "early-stopping metric)")
    r.add_argument("--rows", default="method", help="row keys, e.g. method or method,pool_size")
    r.add_argument("--proposed", default="sdns", help="row compared to the strongest baseline "
                                                     "('none' for no improvement row)")
    r.add_argument("--out", help="output path without suffix (default: <sweep>/report)")
    g = sub.add_parser("plot", help="figures from run directories (needs matplotlib)")
    g.add_argument("paths", nargs="+", metavar="PATH", help="sweep folder(s), run dirs, "
                                                            "or a results.jsonl")
    g.add_argument("--kind", default="all", help="all | curves | vs-H | vs-alpha | diagnostics "
                                                 "| delta-hist (comma-separated)")
    g.add_argument("--metrics", help="metrics (default recall@K,ndcg@K, K = the largest topk)")
    g.add_argument("--epoch", type=int, help="epoch of the Δ histogram (default: last)")
    g.add_argument("--best", action="store_true", default=None, help="only the validation-"
                   "chosen point per method and dataset (automatic above 12 lines per panel)")
    g.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config matches (repeatable), e.g. model=ngcf")
    g.add_argument("--out", help="output folder (default: <first path>/plots)")


def _study(args) -> int:
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "report":
        from .report import report, to_markdown

        t, files = report(args.results, args.out, metrics=args.metrics.split(","),
                          select_metric=args.select, rows_by=tuple(args.rows.split(",")),
                          proposed=None if args.proposed == "none" else args.proposed)
        print(to_markdown(t))
        print("-> " + ", ".join(map(str, files)))
        return 0
    from .plots import plot_all
    from .sweep import parse_assignments

    try:
        files = plot_all(args.paths, args.out, args.kind.split(","),
                         args.metrics.split(",") if args.metrics else None, args.epoch,
                         args.best, only=parse_assignments(args.only))
    except ModuleNotFoundError as e:
        print(f"softbpr: error: {e}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


def _parse_shard(text: str) -> tuple[int, int]:
    from .config import ConfigError

    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ConfigError(f"--shard must be K/N with 1 <= K <= N, got {text!r}")
    return int(k), int(n)


def _sweep_jobs(argv: list[str], jobs: int, out) -> int:
    """Re-run this sweep command as `jobs` subprocesses, shard k/jobs each; lines prefixed."""
    import os
    import subprocess
    import threading

    from .config import ConfigError

    if "--shard" in argv or any(a.startswith("--shard=") for a in argv):
        raise ConfigError("--jobs and --shard cannot be combined")
    rest, skip = [], False
    for a in argv:  # drop --jobs N / --jobs=N
        if skip:
            skip = False
        elif a == "--jobs":
            skip = True
        elif not a.startswith("--jobs="):
            rest.append(a)
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", "1")
    procs = [subprocess.Popen([sys.executable, "-m", "softbpr", *rest, "--shard", f"{k}/{jobs}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for k in range(1, jobs + 1)]

    def relay(k: int, p) -> None:
        for line in p.stdout:
            print(f"[job {k}] {line}", end="", flush=True)

    threads = [threading.Thread(target=relay, args=(k, p), daemon=True)
               for k, p in enumerate(procs, 1)]
    for t in threads:
        t.start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        codes = [p.wait() for p in procs]
    for t in threads:
        t.join()
    print(f"{jobs} jobs finished (exit codes {codes}); results: {out / 'results.jsonl'}")
    return max(codes, key=abs)


def _sweep(args) -> int:
    import signal

    from .config import ConfigError
    from .report import load_results, select
    from .sweep import expand, filter_runs, load_sweep, parse_assignments, run_sweep, status

    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    sw = load_sweep(args.file, quick=args.quick, seeds=seeds,
                    overrides=parse_assignments(args.set), out=args.out)
    if args.jobs > 1:
        return _sweep_jobs(args.argv, args.jobs, sw.out)
    specs = filter_runs(expand(sw, args.file), parse_assignments(args.only))
    if args.shard:
        k, n = _parse_shard(args.shard)
        specs = specs[k - 1::n]
    if args.best:
        res = sw.out / "results.jsonl"
        if not res.exists():
            raise ConfigError(f"--best needs earlier results in {res}")
        chosen = {c.point_id for c in select(load_results(res)).values()}
        specs = [s for s in specs if s.point_id in chosen]
    states = [status(sw, s) for s in specs]
    counts = {k: states.count(k) for k in ("done", "failed", "resumable", "pending")}
    print(f"sweep {sw.name}: {len(specs)} runs -> {sw.out} ("
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ")", flush=True)
    if args.dry_run:
        for s, st in zip(specs, states):
            print(f"  {st:9s} {s.name}")
        return 0

    def _terminate(signum, frame):  # SIGTERM -> unwind: the run keeps its state.pt
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        run_sweep(sw, specs, log=lambda m: print(m, flush=True),
                  retry_failed=args.retry_failed, verbose=args.verbose,
                  budget_minutes=args.budget)
    except KeyboardInterrupt:
        print(f"softbpr: interrupted; rerun the same command to resume ({sw.out})",
              file=sys.stderr)
        return 130
    print(f"results: {sw.out / 'results.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
