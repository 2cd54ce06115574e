"""File formats -> raw columns or `Interactions`; every reader is vectorised (no Python per line).

Formats (`detect_format` picks one from the path; `.gz` is read transparently for all text ones):
- ``lightgcn``: the LightGCN/NGCF release, a folder with ``train.txt`` / ``test.txt`` (and an
  optional ``valid.txt``), one line per user: ``user item item ...``, non-negative integer ids,
  space or TAB separated. A *file* whose name contains ``train`` may be given instead of the
  folder: its test/valid files are the same name with ``train`` replaced by ``test``/``valid``
  (e.g. ``buy_train.txt`` -> ``buy_test.txt``). Optional id maps ``user_list.txt`` /
  ``item_list.txt`` (header ``org_id remap_id``, as in the LightGCN release) turn the file ids
  back into the original ids.
- ``csv``: one interaction per line, ``user<sep>item[<sep>...]`` with ``::``, TAB, comma, ``;``
  or whitespace as separator (taken from the first line), with or without a header. MovieLens'
  ``u.data`` (TAB) and ``ratings.dat`` (``::``) are this format. Without a header the columns are
  ``user,item`` or ``user,item,timestamp`` by position; a file with more columns and no header
  needs `columns` (a header naming user and item must agree with it). A file whose lines hold
  varying numbers of integer ids is LightGCN's ``user item item ...``, not a table:
  `detect_format` picks ``lightgcn`` for such a *train* file beside its *test* file, and refuses
  it otherwise.
- ``recbole``: RecBole atomic files (``.inter``): TAB separated with a typed header such as
  ``user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float``.
- ``parquet``: through pyarrow (``pip install 'softbpr[parquet]'``), columns found by name.

Columns are found by name (header) or by position (`columns`, e.g. ``user,item,rating,timestamp``);
canonical names are user, item, timestamp, rating, behavior (aliases in `ALIASES`).
Text files are parsed by numpy's C reader (`np.loadtxt`); only when it fails is the file scanned
line by line, to raise `DataError` naming ``file:line`` of the first bad line. A truncated or
corrupt ``.gz`` file, an empty file, a header without data, an empty id cell and a device or
pipe given as a file are `DataError`s naming the file too.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import DataError, Interactions, make_idmap, unique

# canonical column -> accepted header names (lower case, RecBole's ":type" suffix removed)
ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid", "visitorid", "customer_id", "u"),
    "item": ("item", "item_id", "itemid", "iid", "movie", "movieid", "movie_id", "product",
             "product_id", "business_id", "venue_id", "location_id", "i"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "time_stamp", "unix_timestamp"),
    "rating": ("rating", "ratings", "score", "stars"),
    "behavior": ("behavior", "behaviour", "behavior_type", "behaviour_type", "action",
                 "action_type", "event", "edge_type", "btype"),
}
_INT_LIKE = re.compile(r"\s*[+-]?\d{1,18}\s*")


def canonical(name: str) -> str:
    """Canonical column name of a header field (``item_id:token`` -> ``item``)."""
    n = name.strip().strip('"').lower().split(":")[0].strip()
    return next((k for k, al in ALIASES.items() if n in al), n)


def detect_format(path: str | Path) -> str:
    """'lightgcn' for a folder holding train.txt, else by suffix: parquet, recbole (.inter), csv;
    a text file of LightGCN lines (varying numbers of integer ids) is 'lightgcn' when it is a
    *train* file with a *test* sibling, and refused otherwise (read as a table it would give one
    pair per user)."""
    p = Path(path)
    if p.is_dir():
        if (p / "train.txt").exists() or (p / "train.txt.gz").exists():
            return "lightgcn"
        raise DataError(f"{p}: a folder must hold train.txt and test.txt (LightGCN format)")
    check_file(p)
    suffixes = [s.lower() for s in p.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and suffixes[-1] == ".inter":
        return "recbole"
    shape = _lightgcn_shape(_head(p))
    if shape is not None:
        if "train" in p.name and p.with_name(p.name.replace("train", "test")).exists():
            return "lightgcn"
        raise _lightgcn_shaped_error(p, shape)
    return "csv"


def check_file(p: Path) -> None:
    """DataError unless `p` is a regular file (a missing path, a device such as /dev/null or
    a pipe would otherwise read as 'empty' or block)."""
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; check the path (--data)")
    if not p.is_file() and not p.is_dir():
        raise DataError(f"{p}: not a regular file (a device, pipe or socket); give a data file "
                        "or folder")


def open_text(path: Path):
    """Text stream of a plain or gzip-compressed file (invalid UTF-8 replaced, not fatal; a
    leading byte order mark, as Excel writes, dropped)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


@contextmanager
def reading(path: Path):
    """Turn a truncated or corrupt .gz file (EOFError, zlib.error, BadGzipFile) into a
    DataError that names the file."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: the compressed file is truncated or corrupt ({e}); download "
                        "or compress it again") from None


def _head(path: Path, n: int = 201) -> list[str]:
    """The first `n` lines, without line ends."""
    with reading(path), open_text(path) as fh:
        return [ln.rstrip("\r\n") for ln in _take(fh, n)]


def _lightgcn_shape(lines: list[str]) -> tuple[int, int, int] | None:
    """(fewest, most fields, lines) when the lines look like LightGCN's 'user item item ...'
    (whitespace/TAB separated non-negative integers, varying in number), else None."""
    rows = [ln.split() for ln in lines if ln.strip()]
    if len(rows) < 2 or any(sep in lines[0] for sep in ("::", ",", ";")):
        return None
    if not all(t.isascii() and t.isdigit() for r in rows for t in r):
        return None
    counts = [len(r) for r in rows]
    return (min(counts), max(counts), len(rows)) if min(counts) != max(counts) else None


def _lightgcn_shaped_error(p: Path, shape: tuple[int, int, int]) -> DataError:
    lo, hi, n = shape
    return DataError(f"{p}: its lines hold {lo} to {hi} integer ids (first {n} lines), as in the "
                     "LightGCN format 'user item item ...', not one interaction per line; pass "
                     "--format lightgcn (with its *test* file beside it: a *train* file name, or "
                     "a folder with train.txt and test.txt), or give a table with one "
                     "user,item[,timestamp] per line")


# ----------------------------------------------------------------------------------------------
# Delimited text (csv, MovieLens, RecBole .inter)


def _detect_sep(line: str) -> str | None:
    """Separator of a data line: '::', tab, comma, ';' or None (= any whitespace)."""
    for sep in ("::", "\t", ",", ";"):
        if sep in line:
            return sep
    return None


def _split_line(line: str, sep: str | None) -> list[str]:
    return [f.strip().strip('"') for f in (line.split(sep) if sep else line.split())]


@dataclass(frozen=True)
class _Layout:
    """How to parse a delimited file: separator, column names, where the data starts."""

    sep: str | None
    names: list[str]  # canonical names of the file's columns, in order
    skip: int  # physical lines before the first data line (blank lines + header)
    header: bool  # whether the file has a header line
    sample: list[list[str]]  # the first data rows, split


def _layout(path: Path, columns: str | None, header_required: bool) -> _Layout:
    head = _head(path)
    first = next((k for k, ln in enumerate(head) if ln.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; give one user,item[,timestamp] per line")
    sep = _detect_sep(head[first])
    fields = _split_line(head[first], sep)
    rest = [_split_line(ln, sep) for ln in head[first + 1:] if ln.strip()]
    mapped = [canonical(f) for f in fields]
    named = "user" in mapped and "item" in mapped
    header = header_required or named or _looks_header(fields, rest)
    where = f"{path}:{first + 1}"
    if columns:  # by position; a header naming user and item must agree with it
        names = [canonical(c) for c in columns.split(",")]
        if header and named and mapped[:len(names)] != names:
            raise DataError(f"{where}: the header names the columns {','.join(mapped)} but "
                            f"--columns says {','.join(names)}; drop --columns to use the "
                            "header, or fix one of them")
    elif header:
        if not named:
            raise DataError(f"{where}: the header {head[first][:80]!r} names no user and item "
                            "columns (e.g. user,item,timestamp or user_id:token); rename them, or "
                            "pass --columns to name the columns by position")
        names = mapped
    elif len(fields) in (2, 3):
        names = ["user", "item", "timestamp"][:len(fields)]
    elif len(fields) < 2:
        raise DataError(f"{where}: one field per line ({head[first][:80]!r}); a table needs "
                        "user<sep>item[<sep>timestamp] separated by ',', TAB, ';', '::' or "
                        "spaces")
    elif (shape := _lightgcn_shape(head)) is not None:
        raise _lightgcn_shaped_error(path, shape)
    else:
        raise DataError(f"{where}: {len(fields)} fields per line and no header; name the "
                        "columns with --columns, e.g. user,item,rating,timestamp")
    if "user" not in names or "item" not in names:
        raise DataError(f"{path}: columns {names} must include 'user' and 'item' (--columns)")
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        if columns:
            raise DataError(f"{path}: --columns names the column {twice!r} twice ({columns}); "
                            "name each column once")
        raise DataError(f"{where}: the header repeats column {twice!r} "
                        f"({head[first][:80]!r}); rename one of them")
    if not header and (shape := _lightgcn_shape(head)) is not None:
        raise _lightgcn_shaped_error(path, shape)
    skip = first + 1 if header else first
    sample = rest if header else [fields, *rest]
    if header and not sample and len(head) < 201:
        raise DataError(f"{where}: the file has a header but no data lines; give one "
                        "interaction per line after it")
    return _Layout(sep, names, skip, header, sample)


def _looks_header(fields: list[str], rest: list[list[str]]) -> bool:
    """Whether a first line that names no user and item columns is a header: it has a text
    field where the lines after it hold numbers, or a known column name."""
    if all(_is_float(f) for f in fields):
        return False
    for c, f in enumerate(fields):
        col = [r[c] for r in rest if len(r) > c]
        if col and not _is_float(f) and all(_is_float(v) for v in col):
            return True
    return any(canonical(f) in ALIASES for f in fields)


def _take(fh, n: int) -> list[str]:
    out = []
    for line in fh:
        out.append(line)
        if len(out) >= n:
            break
    return out


def _guess_kind(name: str, values: list[str]) -> str:
    """'int' | 'float' | 'str' | 'date' for a column, from a sample of its values."""
    if name in ("timestamp", "rating"):
        if all(_is_float(v) for v in values):
            return "float"
        dates = name == "timestamp" and any(_is_date(v) for v in values if not _is_float(v))
        return "date" if dates else "float"
    return "int" if values and all(_INT_LIKE.fullmatch(v) for v in values) else "str"


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_date(s: str) -> bool:
    try:
        np.datetime64(s.strip(), "s")
    except ValueError:
        return False
    return True


_NP = {"int": np.int64, "float": np.float64, "date": object}


def read_table(path: str | Path, columns: str | None = None, want=("user", "item", "timestamp"),
               fmt: str = "auto") -> dict[str, np.ndarray]:
    """Raw columns of an interaction file: canonical name -> array [n], for the names in `want`
    that the file has (user and item are required). Ids stay as in the file: int64 when every id
    is an integer, else unicode strings. Timestamps are float64 (numbers, or ISO dates ->
    seconds); ratings float64; behaviours int64 or strings.

    columns: the file's column names in order (None: the header's, or user,item[,timestamp]
        by position in a 2- or 3-column file without one); a header naming user and item must
        agree with it (DataError otherwise), any other header line is skipped.
    """
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "parquet":
        return read_parquet(path, want)
    if fmt not in ("csv", "recbole"):
        raise DataError(f"{path}: read_table reads csv, recbole or parquet files, not {fmt!r}")
    check_file(path)
    with reading(path):
        return _read_text_table(path, columns, want, fmt)


def _read_text_table(path: Path, columns: str | None, want, fmt: str) -> dict[str, np.ndarray]:
    lay = _layout(path, columns, header_required=fmt == "recbole")
    cols = {n: lay.names.index(n) for n in want if n in lay.names}
    kinds = {n: _guess_kind(n, [r[c] for r in lay.sample if len(r) > c])
             for n, c in cols.items()}
    # '::' is not a one-character delimiter: split on ':' and take every second field
    delim, stride = (":", 2) if lay.sep == "::" else (lay.sep, 1)
    # string columns are read as fixed-width unicode (an object column of 20M str costs ~1 GB);
    # a value that fills the width may be cut, so the column is then re-read twice as wide
    width = {n: max(16, 2 * max((len(r[c]) for r in lay.sample if len(r) > c), default=0))
             for n, c in cols.items()}
    filtered = lenient = False
    for _attempt in range(4 * len(cols) + 8):
        dtype = [(n, f"U{width[n]}" if kinds[n] == "str" else _NP[kinds[n]]) for n in cols]
        kw = {"delimiter": delim, "usecols": [c * stride for c in cols.values()],
              "dtype": dtype, "skiprows": int(lay.header) if filtered else lay.skip,
              "comments": None, "quotechar": '"' if lay.sep == "," else None, "ndmin": 1}
        try:
            with warnings.catch_warnings():  # "input contained no data": our message below
                warnings.simplefilter("ignore", UserWarning)
                if filtered or lenient:
                    with open_text(path) as fh:  # invalid UTF-8 replaced; blank lines filtered
                        arr = np.loadtxt((ln for ln in fh if ln.strip()) if filtered else fh,
                                         **kw)
                else:  # numpy opens the file (.gz too) itself: ~30% faster than a Python stream
                    arr = np.loadtxt(str(path), encoding="utf-8-sig", **kw)
        except UnicodeDecodeError:
            lenient = True
            continue
        except ValueError as e:
            # the error path: find the first bad line (Python, line by line) and decide
            bad = _scan(path, lay, cols, kinds)
            if bad is None:
                raise DataError(f"{path}: {e}") from None
            kind, col = bad
            if kind == "blank":
                filtered = True  # whitespace-only lines, which np.loadtxt does not skip
            elif kind == "widen":
                kinds[col] = "str"  # a non-integer (or over-long) id: keep ids as strings
            else:
                raise DataError(kind) from None
            continue
        cut = [n for n in cols if kinds[n] == "str" and len(arr) and
               int(np.char.str_len(arr[n]).max()) >= width[n]]
        if not cut:
            break
        for n in cut:
            width[n] *= 4
    else:  # pragma: no cover - every retry widens something, so this is bounded
        raise DataError(f"{path}: could not be parsed")
    if len(arr) == 0:
        raise DataError(f"{path}: no data lines; give one interaction per line")
    out = {n: np.asarray(arr[n]) for n in cols}
    if any(kinds[n] == "str" and (out[n] == "").any() for n in ("user", "item")):
        bad = _scan(path, lay, cols, kinds)  # names the line of the empty id
        raise DataError(bad[0] if bad and bad[1] is None else f"{path}: an empty user or item id")
    if "timestamp" in out:
        try:
            out["timestamp"] = _to_seconds(out["timestamp"], path)
        except DataError as e:
            bad = _scan(path, lay, cols, kinds)  # name the line when there is one
            raise DataError(bad[0] if bad and bad[1] is None else str(e)) from None
    return out


def _to_seconds(t: np.ndarray, path: Path) -> np.ndarray:
    if t.dtype != object:
        t = t.astype(np.float64)
    else:
        try:
            t = np.array(t.astype(str), dtype="datetime64[s]").astype(np.int64).astype(float)
        except ValueError:
            raise DataError(f"{path}: timestamps must be numbers (e.g. Unix seconds or YYYYMMDD) "
                            "or ISO dates") from None
    if not np.isfinite(t).all():
        raise DataError(f"{path}: a timestamp is NaN or infinite")
    return t


def _scan(path: Path, lay: _Layout, cols: dict[str, int], kinds: dict[str, str]):
    """The first problem in the file, line by line (error path only).

    Returns (message, None) for a bad line, ('widen', column) when an id column guessed as int
    holds a non-integer, ('blank', None) when only whitespace-only lines tripped the C reader,
    or None when nothing is found.
    """
    need = max(cols.values()) + 1
    blank = False
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if lineno <= lay.skip:
                continue
            if not line.strip():
                blank = blank or line not in ("\n", "\r\n")
                continue
            f = _split_line(line.rstrip("\r\n"), lay.sep)
            if len(f) < need:
                msg = (f"{path}:{lineno}: expected at least {need} fields "
                       f"({', '.join(lay.names[:need])}) separated by "
                       f"{lay.sep or 'whitespace'!r}, got {len(f)}: {line.rstrip()[:80]!r}")
                return (msg, None)
            for n, c in cols.items():
                v = f[c]
                if n in ("user", "item") and not v:
                    msg = (f"{path}:{lineno}: the {n} id is empty; every line needs a user and "
                           "an item: fill or remove the line")
                    return (msg, None)
                if kinds[n] == "int" and not _INT_LIKE.fullmatch(v):
                    return ("widen", n)
                if (kinds[n] == "float" and not _is_float(v)) or (
                        kinds[n] == "date" and not _is_date(v)):
                    what = "timestamp" if n == "timestamp" else n
                    return (f"{path}:{lineno}: {what} {v!r} is not a number"
                            + (" or an ISO date" if kinds[n] == "date" else "")
                            + ("; dates must be numeric (e.g. Unix seconds or YYYYMMDD) or ISO"
                               if n == "timestamp" else ""), None)
    return ("blank", None) if blank else None


def read_parquet(path: Path, want=("user", "item", "timestamp")) -> dict[str, np.ndarray]:
    """Columns of a Parquet file, found by name (aliases as for headers); needs pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install "
                        "'softbpr[parquet]'") from None
    names = pq.read_schema(path).names
    found = {}
    for n in names:
        c = canonical(n)
        if c in want and c not in found:
            found[c] = n
    if "user" not in found or "item" not in found:
        raise DataError(f"{path}: Parquet columns {names} include no user and item column "
                        f"(accepted names: {', '.join(ALIASES['user'][:4])} / "
                        f"{', '.join(ALIASES['item'][:6])})")
    table = pq.read_table(path, columns=list(found.values()))
    out = {}
    for c, n in found.items():
        col = table.column(n)
        if str(col.type).startswith("timestamp") or str(col.type).startswith("date"):
            col = col.cast("timestamp[s]").cast("int64")
        a = col.to_numpy(zero_copy_only=False)
        if col.null_count:
            raise DataError(f"{path}: column {n!r} has {col.null_count:,} missing values")
        out[c] = a.astype(str) if a.dtype == object else a
    if "timestamp" in out:
        out["timestamp"] = _to_seconds(out["timestamp"], path)
    return out


def to_interactions(table: dict[str, np.ndarray], positives=None, min_rating=None,
                    log: Callable[[str], None] = print) -> Interactions:
    """Raw columns (`read_table`) -> `Interactions`, keeping only positive rows:

    positives: behaviour values that count (needs a behavior column; None = every row; the
        behaviour counts are logged whenever there is a behavior column);
    min_rating: drop rows rated below it (needs a rating column; None = keep all).
    Ids are factorised over the rows kept (see `data.make_idmap`); times stay as read.
    """
    keep = np.ones(len(table["user"]), dtype=bool)
    if "behavior" in table:
        b = table["behavior"].astype(str)
        values, counts = np.unique(b, return_counts=True)
        log("behaviours: " + ", ".join(f"{v} {c:,}" for v, c in zip(values, counts)))
        if positives is not None:
            keep &= np.isin(b, np.array(positives, dtype=str))
            log(f"positives {', '.join(positives)}: dropped {int((~keep).sum()):,} rows "
                "of other behaviours")
    elif positives is not None:
        raise DataError("--positives needs a behaviour column (e.g. --columns "
                        "user,item,behavior,timestamp)")
    if min_rating is not None:
        if "rating" not in table:
            raise DataError("--min-rating needs a rating column (e.g. --columns "
                            "user,item,rating,timestamp)")
        low = keep & (table["rating"] < min_rating)
        keep &= ~low
        log(f"ratings below {min_rating:g}: dropped {int(low.sum()):,} rows")
    if not keep.any():
        raise DataError("no positive interactions left")
    if keep.all():  # the common case: no copy of (possibly 100M-row) columns
        u, i, t = table["user"], table["item"], table.get("timestamp")
    else:
        u, i = table["user"][keep], table["item"][keep]
        t = table["timestamp"][keep] if "timestamp" in table else None
    umap, uc = make_idmap(u)
    imap, ic = make_idmap(i)
    return Interactions(uc, ic, t, umap, imap)


def read_delimited(path: str | Path, columns: str | None = None,
                   fmt: str = "auto") -> Interactions:
    """Read a csv / recbole / parquet file into `Interactions` (users, items[, times])."""
    return to_interactions(read_table(path, columns, ("user", "item", "timestamp"), fmt))


# ----------------------------------------------------------------------------------------------
# LightGCN / NGCF format


def read_lightgcn_file(path: Path, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse one ``user item item ...`` file into raw (user, item) id arrays (int64).

    Blank lines are skipped; a user line with no items is allowed (the user just has none here).
    An empty file is an error unless `allow_empty` (a prepared valid.txt may be empty).
    """
    path = Path(path)
    check_file(path)
    with reading(path), open_text(path) as fh:
        text = fh.read()
    buf = np.frombuffer(text.encode("latin-1", errors="replace"), dtype=np.uint8)
    space = (buf == 32) | (buf == 9) | (buf == 10) | (buf == 13) | (buf == 11) | (buf == 12)
    # a token starts at a non-space byte preceded by a space (or the start of the file)
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
    if len(starts) == 0:
        if allow_empty:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        raise DataError(f"{path}: the file is empty")
    line_of = np.cumsum(buf == 10)[starts]  # line index (0-based) of each token
    try:
        vals = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        vals = None
    if vals is None or len(vals) != len(starts) or "-" in text or not text.isascii():
        _lightgcn_error(path)
        raise DataError(f"{path}: could not be parsed as 'user item item ...' lines")
    is_user = np.concatenate([[True], line_of[1:] != line_of[:-1]])
    owner = np.flatnonzero(is_user)[np.cumsum(is_user) - 1]  # index of each token's user token
    return vals[owner[~is_user]], vals[~is_user]


def _lightgcn_error(path: Path) -> None:
    """Raise `DataError` for the first malformed line (error path, line by line)."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            for t in line.split():
                if not re.fullmatch(r"\+?[0-9]+", t):  # (str.isdigit takes '٣' too)
                    what = "a negative id" if t.startswith("-") and t[1:].isdigit() else (
                        f"a non-integer id {t!r}")
                    raise DataError(f"{path}:{lineno}: {what}; the LightGCN format needs "
                                    "'user item item ...' with non-negative integer ids")


@dataclass(frozen=True)
class GivenSplit:
    """Raw pairs of a pre-split dataset, in external ids: name -> (users, items).

    notes: what reading did (id maps applied), one line each.
    """

    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str
    notes: tuple[str, ...] = ()


def lightgcn_files(path: str | Path) -> dict[str, Path]:
    """The split files of a LightGCN dataset given as a folder or as its train file."""
    p = Path(path)
    found: dict[str, Path] = {}
    if p.is_dir():
        for name in ("train", "valid", "test"):
            for cand in (p / f"{name}.txt", p / f"{name}.txt.gz"):
                if cand.exists():
                    found[name] = cand
                    break
    elif p.is_file() and "train" in p.name:
        found["train"] = p
        for name in ("valid", "test"):
            cand = p.with_name(p.name.replace("train", name))
            if cand.exists():
                found[name] = cand
    if "train" not in found or "test" not in found:
        if p.is_dir():
            missing = " and ".join(f"{n}.txt" for n in ("train", "test") if n not in found)
            why = f"the folder has no {missing}"
        elif not p.exists():
            why = "no such file or folder"
        elif "train" not in p.name:
            why = "a file name without 'train' has no *test* sibling to find"
        else:
            why = f"its test file {p.name.replace('train', 'test')} is missing"
        raise DataError(f"{p}: {why}; --format lightgcn needs train and test files: a folder "
                        "with train.txt and test.txt, or a *train* file beside its *test* file")
    return found


def read_id_map(path: Path) -> np.ndarray:
    """``org_id remap_id`` lines (first line a header) -> array of original ids by remap id."""
    with reading(path), open_text(path) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty map: our message below
        try:
            arr = np.loadtxt(fh, dtype=object, usecols=(0, 1), skiprows=1, comments=None,
                             ndmin=2)
        except ValueError:
            raise DataError(f"{path}: expected lines 'org_id remap_id' after a header line"
                            ) from None
    try:
        remap = arr[:, 1].astype(np.int64)
    except ValueError:
        raise DataError(f"{path}: the second column (remap_id) must be integers") from None
    n = len(remap)
    if n == 0 or remap.min() < 0 or remap.max() != n - 1 or len(unique(remap)) != n:
        raise DataError(f"{path}: remap ids must be 0..n-1, each once")
    org, codes = make_idmap(arr[:, 0].astype(str))
    if len(org) != n:
        raise DataError(f"{path}: {n - len(org):,} original ids occur more than once")
    out = np.empty(n, dtype=org.ids.dtype)
    out[remap] = org.ids[codes]
    return out


def read_lightgcn(path: str | Path) -> GivenSplit:
    """Read train/test(/valid) of a LightGCN dataset; apply user_list.txt/item_list.txt if there."""
    files = lightgcn_files(path)
    parts = {name: read_lightgcn_file(f, allow_empty=name != "train") for name, f in files.items()}
    folder = files["train"].parent
    notes = []
    for k, what in ((0, "user"), (1, "item")):
        mp = folder / f"{what}_list.txt"
        if not mp.exists():
            continue
        org = read_id_map(mp)
        for name, pair in list(parts.items()):
            ids = pair[k]
            if len(ids) and ids.max() >= len(org):
                raise DataError(f"{files[name]}: {what} id {int(ids.max())} is out of range: "
                                f"{mp.name} maps only ids 0..{len(org) - 1}")
            new = list(pair)
            new[k] = org[ids]
            parts[name] = (new[0], new[1])
        notes.append(f"{what} ids mapped back to the original ids of {mp.name} ({len(org):,})")
    return GivenSplit(parts, str(path), tuple(notes))
