"""Datasets: `softbpr data list | fetch | prepare | synth | info` (see catalog.py, prepare.py,
synth.py and docs/data.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

EPILOG = """\
examples:
  softbpr data list
  softbpr data fetch ml-100k
  softbpr data fetch taobao --from ~/Downloads/UserBehavior.csv.zip
  softbpr data prepare ml-100k --out data/ml-100k
  softbpr data prepare path/to/log.csv --columns user,item,behavior,timestamp --out data/mine
  softbpr data synth --users 2M --items 1M --interactions 100M --out data/big.csv.gz
  softbpr data info data/ml-100k
  softbpr train --data data/ml-100k
The cache folder is $SOFTBPR_DATA (default: the user's cache folder + softbpr)."""


FORMATS = ("auto", "lightgcn", "csv", "recbole", "parquet")


def add_parsers(sub) -> None:
    from .. import synth
    from ..prepare import PrepareConfig

    d = sub.add_parser("data", help="list, fetch, prepare and synthesise datasets",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    dsub.add_parser("list", help="the known datasets: size, counts, whether cached"
                    ).set_defaults(run=data_list)
    f = dsub.add_parser("fetch", help="download a known dataset into the cache, verified")
    f.add_argument("name")
    f.add_argument("--from", dest="source", metavar="PATH_OR_URL",
                   help="a local copy (the file, or a folder holding it) or a mirror URL")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(run=fetch)
    p = dsub.add_parser("prepare", help="the paper's preprocessing + split -> a folder that "
                                        "`softbpr train --data DIR` reads")
    p.add_argument("source", metavar="NAME|PATH", help="a cached dataset name or a file/folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="auto", choices=FORMATS, help=" | ".join(FORMATS))
    p.add_argument("--columns", help="column names of a file without header, e.g. "
                                     "user,item,behavior,timestamp")
    p.add_argument("--positives", help="behaviour values that count as positives, e.g. buy,cart "
                                       "(default: all)")
    p.add_argument("--min-rating", type=float, help="drop rows rated below this")
    dflt = {f.name: f.default for f in fields(PrepareConfig)}  # one source: PrepareConfig
    p.add_argument("--user-core", type=int, default=dflt["user_core"],
                   help=f"keep users with at least this many items (default "
                        f"{dflt['user_core']}; 0 = off)")
    p.add_argument("--item-core", type=int, default=dflt["item_core"],
                   help=f"also filter items (default {dflt['item_core']}; 0 = off)")
    p.add_argument("--users", type=int, dest="n_users", help="random subset of this many users")
    p.add_argument("--split", default=dflt["split"],
                   help=f"temporal | random | given (default {dflt['split']})")
    p.add_argument("--valid-ratio", type=float, default=dflt["valid_ratio"],
                   help=f"per-user validation share (default {dflt['valid_ratio']})")
    p.add_argument("--test-ratio", type=float, default=dflt["test_ratio"],
                   help=f"per-user test share (default {dflt['test_ratio']})")
    p.add_argument("--seed", type=int, default=dflt["seed"],
                   help=f"user subset / random split seed (default {dflt['seed']})")
    p.add_argument("--name", help="dataset name in summary.json (default: from the source)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    p.set_defaults(run=prepare)
    synth.add_parser(dsub)
    dsub.choices["synth"].set_defaults(run=synth.run)
    i = dsub.add_parser("info", help="the Table 1 row (users, items, interactions, density)")
    i.add_argument("path", metavar="DIR|PATH")
    i.add_argument("--format", default="auto", choices=FORMATS, help=" | ".join(FORMATS))
    i.add_argument("--columns", help="column names of a file, e.g. user,item,rating,timestamp "
                                     "(default: the header, or user,item[,timestamp])")
    i.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    i.set_defaults(run=info)


def data_list(args) -> int:
    from .. import catalog

    rows = catalog.table()
    print(f"cache: {catalog.data_home()}")
    head = ("name", "size", "users", "items", "interactions", "cached")
    widths = [max(len(str(r[h])) for r in [dict(zip(head, head))] + rows) for h in head]
    for r in [dict(zip(head, head))] + rows:
        print("  ".join(str(r[h]).rjust(w) if 0 < k < 5 else str(r[h]).ljust(w)
                        for k, (h, w) in enumerate(zip(head, widths))).rstrip())
    return 0


def fetch(args) -> int:
    from .. import catalog

    catalog.fetch(args.name, args.source, quiet=args.quiet or not sys.stderr.isatty())
    return 0


def prepare(args) -> int:
    from ..prepare import PrepareConfig
    from ..prepare import prepare as prepare_data

    cfg = PrepareConfig(
        positives=tuple(args.positives.split(",")) if args.positives else None,
        min_rating=args.min_rating, user_core=args.user_core, item_core=args.item_core,
        n_users=args.n_users, seed=args.seed, split=args.split,
        valid_ratio=args.valid_ratio, test_ratio=args.test_ratio)
    prepare_data(args.source, args.out, cfg, fmt=args.format, columns=args.columns,
                 name=args.name, overwrite=args.overwrite)
    return 0


def info(args) -> int:
    from ..prepare import info as summary

    s = summary(args.path, fmt=args.format, columns=args.columns)
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
