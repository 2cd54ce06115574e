"""The paper's preprocessing (Sec. 4.1) and prepared dataset folders.

`prepare(source, out, cfg)` turns a raw interaction log (or a pre-split LightGCN dataset) into a
folder that ``softbpr train --data DIR`` reads directly:

    train.txt valid.txt test.txt   LightGCN format, internal ids 0..n-1 (``user item item ...``)
    user_list.txt item_list.txt    ``org_id remap_id``: internal id -> the data's own id
    summary.json                   counts (the paper's Table 1 row), the steps and what they dropped

Steps for a raw log, in order (each prints what it drops, with counts); they are the one
ingestion path of `split.split_table`, which `softbpr train` on a file takes as well:
1. positives: rows whose behaviour is in `positives` (default: every behaviour -- the paper treats
   click, favourite, cart and buy alike); rows with rating < `min_rating` are dropped if it is set;
2. de-duplicate (user, item), keeping the earliest row (ties in time: the first in the file);
3. `user_core`: keep users with at least that many distinct items (the paper's 10-core);
   `item_core` > 0 also filters items, repeating both filters until stable;
4. `n_users`: a random subset of that many users (seeded), as the paper does for Taobao;
5. the split (`split.py`): temporal by default -- per user, the latest 10% -> test, the 10% before
   -> valid, the rest -> train. Ties in time are broken by file order: of two rows with the same
   timestamp, the one later in the file counts as later (so it is held out first).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ._version import __version__
from .config import ConfigError, DataConfig
from .data import DataError, unique
from .split import Pairs, Split, split_table

TIE_RULE = ("ties in time are broken by file order: of two rows with the same timestamp the "
            "later one in the file counts as later")


_FLAGS = {"data.valid_ratio": "--valid-ratio", "data.test_ratio": "--test-ratio",
          "data.seed": "--seed"}
"""DataConfig's keys as `softbpr data prepare` names them."""


@dataclass(frozen=True)
class PrepareConfig:
    positives: tuple[str, ...] | None = None
    """Behaviour values that count as positives (e.g. ("buy",)); None = every behaviour."""
    min_rating: float | None = None
    """Drop rows rated below this (needs a rating column); None = keep every rating."""
    user_core: int = 10
    """Keep users with at least this many distinct items (the paper's 10-core); 0/1 = off."""
    item_core: int = 0
    """Also keep only items with at least this many users (iterated with user_core); 0 = off."""
    n_users: int | None = None
    """Keep a random subset of this many users (after the core filter); None = all."""
    seed: int = DataConfig.seed
    """Seed of the user subset and of random splits."""
    split: str = "temporal"
    """temporal | random | given (a pre-split LightGCN source is kept as it is)."""
    valid_ratio: float = DataConfig.valid_ratio
    test_ratio: float = DataConfig.test_ratio

    def __post_init__(self):
        if self.split not in ("temporal", "random", "given"):
            raise DataError(f"split {self.split!r} is not one of: temporal, random, given")
        if self.n_users is not None and self.n_users < 1:
            raise DataError(f"n_users must be >= 1, got {self.n_users}")
        try:  # the bounds `softbpr train` applies (config.DataConfig), named by prepare's flags
            DataConfig(valid_ratio=self.valid_ratio, test_ratio=self.test_ratio, seed=self.seed)
        except ConfigError as e:
            msg = str(e)
            for key, flag in _FLAGS.items():
                msg = msg.replace(key, flag)
            raise DataError(msg) from None
        for flag, v in (("--user-core", self.user_core), ("--item-core", self.item_core)):
            if v < 0:
                raise DataError(f"{flag} must be >= 0 (0 = off), got {v}")


def resolve(source: str, fmt: str = "auto", columns: str | None = None, cfg=None):
    """(path, format, columns, default config changes, name) of a catalogue NAME or a PATH."""
    from . import catalog

    p = Path(source).expanduser()
    if not p.exists() and source in catalog.DATASETS:
        ds = catalog.DATASETS[source]
        if not catalog.is_cached(ds):
            raise DataError(f"{source} is not in the cache ({catalog.folder(source)}); run "
                            f"`softbpr data fetch {source}` first (or set SOFTBPR_DATA)")
        path = catalog.folder(source) / ds.main
        defaults = dict(ds.extra)
        if ds.split == "given":
            defaults["split"] = "given"
        return path, ds.format, columns or ds.columns, defaults, source
    if not p.exists():
        raise DataError(f"{source}: no such file or folder, and not a known dataset name "
                        "(see `softbpr data list`)")
    # a file is named after its folder (ml-100k/u.data -> ml-100k), a folder after itself
    name = p.resolve().name if p.is_dir() else p.resolve().parent.name
    return p, fmt, columns, {}, name


def prepare(source: str | Path, out: str | Path, cfg: PrepareConfig | None = None,
            fmt: str = "auto", columns: str | None = None, name: str | None = None,
            log: Callable[[str], None] = print, overwrite: bool = False) -> dict:
    """Preprocess `source` (a catalogue name or a path) and write a prepared folder to `out`.

    cfg fields left at their defaults take the catalogue's defaults for a known dataset (e.g.
    split 'given' for LightGCN releases). Returns the summary that is written to summary.json.
    """
    from .config import DataConfig
    from .readers import detect_format, read_table
    from .split import load_split

    path, fmt, columns, defaults, auto_name = resolve(str(source), fmt, columns)
    cfg = cfg or PrepareConfig()
    base = PrepareConfig()
    changes = {k: v for k, v in defaults.items() if getattr(cfg, k) == getattr(base, k)}
    if changes:
        cfg = PrepareConfig(**{**asdict(cfg), **changes})
    fmt = detect_format(path) if fmt == "auto" else fmt
    name = name or auto_name
    out = Path(out)
    src, dst = path.resolve(), out.resolve()
    if src == dst or dst in src.parents:
        raise DataError(f"--out {out} is the source {path} or a folder holding it; writing "
                        "there would overwrite the source: choose another --out (--overwrite "
                        "does not change this)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose another --out or pass "
                              "--overwrite")
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        log(msg)

    raw: dict = {}
    if fmt == "lightgcn":
        if cfg.split != "given":
            raise DataError(f"{path}: a LightGCN dataset is already split; prepare it with "
                            "--split given (or train on it with --split temporal/random)")
        split = load_split(DataConfig(data=str(path), format="lightgcn", split="given",
                                      seed=cfg.seed, valid_ratio=cfg.valid_ratio), note)
    else:
        if cfg.split == "given":
            raise DataError(f"{path}: --split given needs a pre-split LightGCN dataset")
        t0 = time.time()
        table = read_table(path, columns, ("user", "item", "timestamp", "rating", "behavior"),
                           fmt)
        raw = {"rows": len(table["user"]), "users": len(unique(table["user"])),
               "items": len(unique(table["item"]))}
        note(f"read {raw['rows']:,} rows ({raw['users']:,} users, {raw['items']:,} items) from "
             f"{path} in {time.time() - t0:.1f}s")
        if cfg.split == "temporal" and "timestamp" not in table:
            raise DataError(f"{path}: the temporal split needs a timestamp column; give "
                            "--columns with 'timestamp' or use --split random")
        split = split_table(table, name, cfg.split, cfg.seed, cfg.valid_ratio, cfg.test_ratio,
                            positives=cfg.positives, min_rating=cfg.min_rating,
                            user_core=cfg.user_core, item_core=cfg.item_core,
                            n_users=cfg.n_users, log=note)
    summary = {
        "name": name, "source": str(path), "format": fmt, "softbpr": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "preprocessing": {**asdict(cfg), "tie_rule": TIE_RULE if cfg.split == "temporal"
                          else None},
        "raw": raw, "counts": counts(split), "notes": notes,
    }
    write_split(split, out, summary)
    log(f"wrote {out}: {table1_row(summary)}")
    return summary


def counts(split: Split) -> dict:
    """The Table 1 numbers of a split (interactions = train + valid + test)."""
    n = len(split.train) + len(split.valid) + len(split.test)
    return {"users": split.n_users, "items": split.n_items, "interactions": n,
            "train": len(split.train), "valid": len(split.valid), "test": len(split.test),
            "density": n / max(1, split.n_users * split.n_items)}


def _write_pairs(path: Path, p: Pairs) -> None:
    """LightGCN lines ``user item item ...``, users ascending, items in their stored order."""
    order = np.argsort(p.users, kind="stable")
    users, items = p.users[order], p.items[order]
    cuts = np.flatnonzero(np.diff(users)) + 1
    with open(path, "w") as fh:
        for us, it in zip(np.split(users, cuts), np.split(items, cuts)):
            if len(us):
                fh.write(f"{us[0]} " + " ".join(map(str, it.tolist())) + "\n")


def _write_map(path: Path, ids: np.ndarray) -> None:
    strs = ids.astype(str)
    if ids.dtype.kind not in "iu" and any(len(s.split()) != 1 for s in strs.tolist()):
        raise DataError(f"{path.name}: ids with whitespace (or empty ids) cannot be written in "
                        "the 'org_id remap_id' format")
    with open(path, "w") as fh:
        fh.write("org_id remap_id\n")
        fh.writelines(f"{s} {k}\n" for k, s in enumerate(strs.tolist()))


def write_split(split: Split, out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        _write_pairs(out / f"{part}.txt", getattr(split, part))
    _write_map(out / "user_list.txt", split.user_map.ids)
    _write_map(out / "item_list.txt", split.item_map.ids)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def table1_row(summary: dict) -> str:
    c = summary["counts"]
    return (f"{summary['name']}: {c['users']:,} users, {c['items']:,} items, "
            f"{c['interactions']:,} interactions (train {c['train']:,} / valid {c['valid']:,} / "
            f"test {c['test']:,}), density {c['density']:.5f}")


def info(path: str | Path, log: Callable[[str], None] = lambda m: None, fmt: str = "auto",
         columns: str | None = None) -> dict:
    """The summary of a prepared folder; for any other dataset path, computed by loading it
    (fmt, columns: as `softbpr train --format/--columns`)."""
    from .config import DataConfig
    from .split import load_split

    p = Path(path)
    if (p / "summary.json").exists():
        return json.loads((p / "summary.json").read_text())
    split = load_split(DataConfig(data=str(p), format=fmt, columns=columns), log)
    return {"name": split.name, "source": str(p), "counts": counts(split),
            "notes": list(split.notes)}
