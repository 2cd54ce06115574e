"""Reading implicit feedback into `Interactions`: int index arrays plus external<->internal id maps.

Readers:
- `read_lightgcn(dir)`: the LightGCN/NGCF release format, ``train.txt`` / ``test.txt`` (and an
  optional ``valid.txt``), one line per user: ``user item item ...`` with non-negative integer ids.
  Returns the given split files as separate pair sets.
- `read_delimited(path)`: one interaction per line, ``user<sep>item[<sep>timestamp]`` with comma,
  tab, semicolon, ``::`` or whitespace as separator, header or not, extra columns ignored.

Every reader raises `DataError` with the file name and line number of the first bad line.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Malformed or unusable input data; the message names the file and line or the problem."""


@dataclass(frozen=True)
class IdMap:
    """External ids of one entity (users or items); the internal index is the position in `ids`.

    `ids` is an int64 array when every external id is an integer, else an array of str.
    """

    ids: np.ndarray
    _lookup: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def to_external(self, index) -> np.ndarray:
        return self.ids[np.asarray(index, dtype=np.int64)]

    def to_internal(self, external) -> np.ndarray:
        """Internal indices of external ids; raises KeyError naming the first unknown id.

        Ids are compared after conversion to this map's id type, so "42" finds the integer id 42.
        """
        if not self._lookup:
            self._lookup.update({_norm(x): i for i, x in enumerate(self.ids.tolist())})
        out = np.empty(len(external), dtype=np.int64)
        for k, x in enumerate(external):
            key = _norm(x)
            if key not in self._lookup:
                raise KeyError(f"unknown id {x!r}")
            out[k] = self._lookup[key]
        return out

    def __contains__(self, external) -> bool:
        try:
            self.to_internal([external])
        except KeyError:
            return False
        return True

    def subset(self, keep: np.ndarray) -> IdMap:
        return IdMap(self.ids[keep])


def _norm(x) -> str:
    """Canonical key for an external id: ints and numeric strings compare equal."""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    s = str(x).strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return str(int(s))
    return s


def make_idmap(raw: np.ndarray) -> tuple[IdMap, np.ndarray]:
    """Factorise raw ids (any dtype) into an `IdMap` (sorted unique ids) and int64 codes."""
    raw = np.asarray(raw)
    if raw.dtype.kind in "US" or raw.dtype == object:
        as_str = raw.astype(str)
        if as_str.size and all(re.fullmatch(r"[+-]?\d{1,18}", s) for s in np.unique(as_str)):
            raw = as_str.astype(np.int64)
        else:
            raw = as_str
    uniq, codes = np.unique(raw, return_inverse=True)
    return IdMap(uniq), codes.astype(np.int64).reshape(-1)


@dataclass(frozen=True)
class Interactions:
    """A set of (user, item[, time]) events in internal indices, with the id maps they refer to.

    users, items: int64 [n]; times: float64 [n] or None; user_map/item_map: external ids.
    """

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None
    user_map: IdMap
    item_map: IdMap

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def select(self, mask: np.ndarray) -> Interactions:
        """Rows where `mask` holds, with the same id maps."""
        t = None if self.times is None else self.times[mask]
        return Interactions(self.users[mask], self.items[mask], t, self.user_map, self.item_map)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


# ----------------------------------------------------------------------------------------------
# LightGCN / NGCF format


def read_lightgcn_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one ``user item item ...`` file into raw (user, item) id arrays (int64).

    Blank lines are skipped; a user line with no items is allowed (the user just has none here).
    """
    path = Path(path)
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    n_lines = 0
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            tokens = line.split()
            if not tokens:
                continue
            n_lines += 1
            for t in tokens:
                if not t.isdigit():
                    what = "a negative id" if t.startswith("-") and t[1:].isdigit() else (
                        f"a non-integer id {t!r}")
                    raise DataError(f"{path}:{lineno}: {what}; the LightGCN format needs "
                                    "'user item item ...' with non-negative integer ids")
            ids = np.array(tokens, dtype=np.int64)
            users.append(np.full(len(ids) - 1, ids[0], dtype=np.int64))
            items.append(ids[1:])
    if n_lines == 0:
        raise DataError(f"{path}: the file is empty")
    return np.concatenate(users), np.concatenate(items)


@dataclass(frozen=True)
class GivenSplit:
    """Raw pairs of a pre-split dataset, still in external ids: name -> (users, items)."""

    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str


def read_lightgcn(directory: str | Path) -> GivenSplit:
    """Read ``train.txt``, ``test.txt`` and optional ``valid.txt`` of a LightGCN-format folder."""
    d = Path(directory)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("train", "valid", "test"):
        for cand in (d / f"{name}.txt", d / f"{name}.txt.gz"):
            if cand.exists():
                parts[name] = read_lightgcn_file(cand)
                break
    if "train" not in parts or "test" not in parts:
        raise DataError(f"{d}: a LightGCN-format folder needs train.txt and test.txt "
                        f"(found: {sorted(p.name for p in d.iterdir()) if d.is_dir() else 'none'})")
    return GivenSplit(parts, str(d))


# ----------------------------------------------------------------------------------------------
# Delimited files

_HEADER_WORDS = re.compile(r"(user|item|movie|time|rating|id\b|uid|iid|product)", re.I)


def _detect_sep(line: str) -> str | None:
    """Separator of a data line: '::', tab, comma, ';' or None (= any whitespace)."""
    for sep in ("::", "\t", ",", ";"):
        if sep in line:
            return sep
    return None


def read_delimited(path: str | Path, columns: str = "user,item,timestamp") -> Interactions:
    """Read ``user<sep>item[<sep>timestamp ...]`` lines into `Interactions`.

    columns: comma-separated names of the file's columns in order; ``user`` and ``item`` are
        required, ``timestamp`` is optional, any other name (e.g. ``rating``, ``-``) is ignored.
        With a header line whose fields name the columns (user/user_id/userId, item/item_id/
        movieId, timestamp/time), the header wins.
    The separator is taken from the first data line ('::', tab, comma, ';', else whitespace).
    A first line is a header when any of its fields is a word like user/item/time/rating/id.
    Ids may be any strings; they are kept as external ids (ints when all are integers).
    """
    path = Path(path)
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    first = next((k for k, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty")
    sep = _detect_sep(lines[first])
    names = [c.strip().lower() for c in columns.split(",")]
    head = [f.strip().strip('"').lower() for f in lines[first].split(sep)]
    start = first
    if any(_HEADER_WORDS.search(f) for f in head) and not all(
        re.fullmatch(r"[+-]?[\d.eE]+", f) for f in head
    ):
        aliases = {"user": ("user", "user_id", "userid", "uid", "user_id:token"),
                   "item": ("item", "item_id", "itemid", "iid", "movieid", "movie_id",
                            "item_id:token", "product", "product_id"),
                   "timestamp": ("timestamp", "time", "ts", "datetime", "date",
                                 "timestamp:float")}
        mapped = []
        for f in head:
            name = next((k for k, al in aliases.items() if f in al), f)
            mapped.append(name)
        if "user" in mapped and "item" in mapped:
            names = mapped
        start = first + 1
    if "user" not in names or "item" not in names:
        raise DataError(f"{path}: columns {names} must include 'user' and 'item'")
    cu, ci = names.index("user"), names.index("item")
    ct = names.index("timestamp") if "timestamp" in names else None
    need = max(cu, ci, ct if ct is not None else -1) + 1
    users, items, times = [], [], []
    for lineno in range(start, len(lines)):
        line = lines[lineno]
        if not line.strip():
            continue
        f = line.split(sep) if sep else line.split()
        if len(f) < need:
            raise DataError(f"{path}:{lineno + 1}: expected at least {need} fields "
                            f"({', '.join(names[:need])}) separated by {sep or 'whitespace'!r}, "
                            f"got {len(f)}: {line[:80]!r}")
        users.append(f[cu].strip())
        items.append(f[ci].strip())
        if ct is not None:
            times.append(f[ct].strip())
    if not users:
        raise DataError(f"{path}: no data lines")
    t = None
    if ct is not None:
        try:
            t = np.array(times, dtype=np.float64)
        except ValueError:
            for k, s in enumerate(times):
                try:
                    float(s)
                except ValueError:
                    raise DataError(f"{path}: timestamp {s!r} is not a number "
                                    f"(data row {k + 1}); dates must be numeric (e.g. Unix "
                                    "seconds or YYYYMMDD)") from None
        if not np.isfinite(t).all():
            raise DataError(f"{path}: a timestamp is NaN or infinite")
    umap, uc = make_idmap(np.array(users))
    imap, ic = make_idmap(np.array(items))
    return Interactions(uc, ic, t, umap, imap)


def detect_format(path: str | Path) -> str:
    """'lightgcn' for a folder holding train.txt/test.txt, 'csv' for a file."""
    p = Path(path)
    if p.is_dir():
        if (p / "train.txt").exists() or (p / "train.txt.gz").exists():
            return "lightgcn"
        raise DataError(f"{p}: a folder must hold train.txt and test.txt (LightGCN format)")
    if p.is_file():
        return "csv"
    raise DataError(f"{p}: no such file or folder")


def k_core(data: Interactions, k: int, log=print) -> Interactions:
    """Repeatedly drop users and items with fewer than `k` interactions until none is left.

    Dropped users/items leave the id maps (indices are recomputed); counts are printed.
    """
    if k <= 1:
        return data
    u, i, t = data.users, data.items, data.times
    keep = np.ones(len(u), dtype=bool)
    while True:
        cu = np.bincount(u[keep], minlength=data.n_users)
        ci = np.bincount(i[keep], minlength=data.n_items)
        bad = keep & ((cu[u] < k) | (ci[i] < k))
        if not bad.any():
            break
        keep &= ~bad
    if not keep.any():
        raise DataError(f"{k}-core filtering left no interactions")
    out = compact(data.select(keep))
    log(f"{k}-core: kept {len(out):,} of {len(data):,} interactions, dropped "
        f"{data.n_users - out.n_users:,} users and {data.n_items - out.n_items:,} items")
    return out


def compact(data: Interactions) -> Interactions:
    """Drop users/items with no rows and renumber the rest 0..n-1 (order preserved)."""
    uk = np.unique(data.users)
    ik = np.unique(data.items)
    unew = np.searchsorted(uk, data.users)
    inew = np.searchsorted(ik, data.items)
    return Interactions(unew, inew, data.times, data.user_map.subset(uk), data.item_map.subset(ik))
