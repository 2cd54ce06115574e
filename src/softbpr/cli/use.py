"""Using a trained run: `softbpr evaluate | recommend | export` (see recommend.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .args import cutoffs, positive_int

RECOMMEND_EPILOG = """\
exit status: 0 when every user was served (known, or unknown with --fallback popular);
1 when some users are unknown and no fallback was asked (the known users are still printed);
2 on other errors. Ids are the data file's own ids; "42" matches the integer id 42."""


def add_parsers(sub) -> None:
    e = sub.add_parser("evaluate", help="recompute valid/test metrics from a run's checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--topk", default=None, type=cutoffs, metavar="K,K",
                   help="cut-offs (default: the run's)")
    e.add_argument("--device", default="auto")
    e.set_defaults(run=evaluate)
    r = sub.add_parser("recommend", help="top-K unseen items per user from a run's checkpoint",
                       epilog=RECOMMEND_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("run_dir")
    r.add_argument("--user", action="append", default=[], metavar="ID",
                   help="external user id (repeatable)")
    r.add_argument("--users-file", metavar="F",
                   help="file with one user id per line ('-' = stdin; blank lines skipped)")
    r.add_argument("--k", type=positive_int, default=10, help="items per user (default 10)")
    r.add_argument("--include-seen", action="store_true",
                   help="keep the user's training items (default: excluded)")
    r.add_argument("--fallback", choices=["popular"], default=None,
                   help="for unknown users: the items with the most training interactions")
    r.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="output format (default table)")
    r.add_argument("--device", default="auto")
    r.add_argument("--ann", nargs="?", const="ivf", choices=["ivf", "hnsw", "flat"],
                   help="approximate top-K from a Faiss index (default kind ivf; needs "
                        "softbpr[ann]); default: exact scores over every item")
    r.set_defaults(run=recommend)
    x = sub.add_parser("export", help="write final user/item embeddings with external ids",
                       description="FILE.npz: arrays user_ids, item_ids, user_embeddings, "
                                   "item_embeddings. FILE.parquet: FILE.users.parquet and "
                                   "FILE.items.parquet with columns id, embedding (needs "
                                   "pyarrow).")
    x.add_argument("run_dir")
    x.add_argument("--out", required=True, metavar="FILE", help="a .npz or .parquet file name")
    x.add_argument("--overwrite", action="store_true", help="replace existing files")
    x.add_argument("--device", default="auto")
    x.set_defaults(run=export)


def evaluate(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..graph import InteractionGraph
    from ..rundir import RESULT, RunDir
    from ..seeding import pick_device
    from ..trainer import evaluate_model

    dev = pick_device(args.device)
    exp, model, split, ck = load_checkpoint(args.run_dir, dev)
    ks = list(args.topk or exp.eval.topk)
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, dev)
    out = {"best_epoch": ck["epoch"]}
    for which in ("valid", "test"):
        if len(getattr(split, which)):
            out[which] = {k: v for k, v in evaluate_model(model, graph, split, which, ks,
                                                          exp.eval.batch_users,
                                                          rank_by=exp.eval.rank_by).items()
                          if k != "users"}
    print(json.dumps(out, indent=2))
    ref = RunDir(args.run_dir).read_result()
    if ref is not None and not args.topk:
        diffs = [abs(ref[w][k] - out[w][k]) for w in ("valid", "test") if w in out and w in ref
                 for k in out[w] if k in ref[w]]
        if diffs:
            print(f"max |difference| to {RESULT}: {max(diffs):.2e}")
    return 0


def recommend(args) -> int:
    from ..recommend import load_recommender

    ids = _read_user_ids(args)
    rec = load_recommender(args.run_dir, args.device, index=args.ann)
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


def export(args) -> int:
    from ..recommend import load_recommender

    if Path(args.out).suffix not in (".npz", ".parquet"):
        raise ValueError(f"{args.out}: unknown export format, export --out; use a .npz or "
                         ".parquet file name")
    for f in export_targets(args.out):  # checked before the (slow) load
        if f.is_dir():
            raise IsADirectoryError(f"{f} is a folder, export --out; give a file name, or a "
                                    "path inside the folder")
        if f.exists() and not args.overwrite:
            raise FileExistsError(f"{f} exists, export --out; choose another name or pass "
                                  "--overwrite")
        if not f.parent.is_dir():
            raise FileNotFoundError(f"{f.parent}: no such folder, export --out; create it first")
    rec = load_recommender(args.run_dir, args.device)
    files = rec.export(args.out)
    print(f"{len(rec.user_ids):,} users, {len(rec.item_ids):,} items, dim "
          f"{rec.user_embeddings.shape[1]} -> {', '.join(str(f) for f in files)}")
    return 0


def export_targets(out: str) -> list[Path]:
    """The files `Recommender.export(out)` writes (.parquet: <stem>.users/.items.parquet)."""
    p = Path(out)
    if p.suffix == ".parquet":
        stem = p.name[:-len(".parquet")]
        return [p.with_name(f"{stem}.users.parquet"), p.with_name(f"{stem}.items.parquet")]
    return [p]


def _read_user_ids(args) -> list[str]:
    ids = list(args.user)
    if args.users_file == "-":
        ids += [ln.strip() for ln in sys.stdin if ln.strip()]
    elif args.users_file:
        try:
            with open(args.users_file, encoding="utf-8-sig") as fh:
                ids += [ln.strip() for ln in fh if ln.strip()]
        except UnicodeDecodeError as e:
            raise ValueError(f"{args.users_file}: not UTF-8 text (byte {e.start}), --users-file; "
                             "give one user id per line, saved as UTF-8") from None
        except OSError as e:  # name the flag: "--users 1" is argparse's --users-file 1
            raise OSError(e.errno, e.strerror, f"{args.users_file} (--users-file)") from None
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
