"""Memory at scale: what loading and training need, checked before the work starts.

A 100 GB log given to a 24 GB machine should stop in a second with a line saying what it would
need, not after ten minutes in the out-of-memory killer. The figures are measured peaks of this
code on CPU (bench/scale.py, 1M and 10M interactions, docs/large-data.md), as bytes per unit:

    load + split   LOAD_PER_ROW  bytes per row of the log, at the peak of `load_split`
    split (kept)   SPLIT_PER_ROW per row: train/valid/test pairs (int64) and id maps
    graph          GRAPH_PER_PAIR per train pair: Â (CSR, both directions), the train CSR,
                   the sorted pair keys and the rank-draw index; + the train-pair bitmap
                   (one bit per user x item, only when U x I <= 2^31)
    training       TRAIN_PER_NODE_DIM per (user + item) x dimension: the embedding table and
                   its gradient, Adam's two moments, the best weights, and a LightGCN step's
                   transient buffers (layer outputs, their gradients, the pooled gradient)

so that a LightGCN/SDNS run peaks near
    base + SPLIT_PER_ROW·rows + GRAPH_PER_PAIR·train + TRAIN_PER_NODE_DIM·(users + items)·d.
The memory available is /proc/meminfo's MemAvailable (Linux), or $SOFTBPR_MAX_MEMORY (e.g. 14G)
when set, which also lets a shared machine cap a run below what is free. Where neither is known
nothing is checked. A check passes when the estimate is at most the budget. The training
estimate is within 8% of the five measured peaks (1M and 10M interactions at d = 32 and 64,
100M at d = 32: 12.2 GB estimated, 12.3 GB measured; docs/large-data.md); the load estimate
(110 B/row) is above the measured 97-109 B/row.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BASE = 0.3e9  # Python + numpy + torch + scipy, imported
LOAD_PER_ROW = 110
SPLIT_PER_ROW = 26
GRAPH_PER_PAIR = 50
TRAIN_PER_NODE_DIM = 56  # 52 measured (4 the table + 48 the step) + 4 for the best weights
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_bytes(text: str) -> float:
    """'14G' -> 14e9 (also 500M, 1.5T, 2e9; a trailing B or iB is ignored)."""
    m = re.fullmatch(r"\s*([\d.]+(?:e\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise ValueError(f"SOFTBPR_MAX_MEMORY={text!r} is not a size (e.g. 14G or 500M)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def available() -> float | None:
    """Bytes this process may use: $SOFTBPR_MAX_MEMORY, else MemAvailable, else None."""
    env = os.environ.get("SOFTBPR_MAX_MEMORY")
    if env:
        return parse_bytes(env)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024.0
    except OSError:
        pass
    return None


def gb(x: float) -> str:
    """A size in GB (MB below 1 GB, kB below 1 MB)."""
    if x >= 1e9:
        return f"{x / 1e9:,.1f} GB"
    return f"{x / 1e6:,.0f} MB" if x >= 1e6 else f"{x / 1e3:,.0f} kB"


def estimate_rows(path: str | Path, sample: int = 1 << 22, lightgcn: bool = False
                  ) -> tuple[int, float]:
    """(rows, bytes of text) of a delimited file: its text size (for .gz: the compressed size x
    the compression ratio of its first `sample` bytes) divided by the bytes per line of a
    sample (plain files: sample / 4 bytes from the start, the middle and the end each, since
    lines get longer as ids grow; .gz: the start). A file shorter than the sample is counted.
    lightgcn: lines are 'user item item ...', and a row is an (user, item) pair: the sample's
    items (tokens minus lines) per byte instead of its lines."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix == ".gz":
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as fh:
            text = fh.read(sample)
            used = raw.tell()  # compressed bytes read so far (the reader buffers ahead a bit)
        if len(text) < sample:  # the whole file was read
            return _rows(text, lightgcn), float(len(text))
        total = size * len(text) / max(used, 1)
    else:
        total = float(size)
        with open(path, "rb") as fh:
            if size <= sample:
                return _rows(fh.read(), lightgcn), total
            # lines get longer as ids grow: sample the start, the middle and the end
            parts = []
            for at in (0, (size - sample // 4) // 2, size - sample // 4):
                fh.seek(at)
                parts.append(fh.read(sample // 4))
            text = b"".join(parts)
    return int(total * max(1, _rows(text, lightgcn)) / max(1, len(text))), total


def _rows(text: bytes, lightgcn: bool) -> int:
    lines = text.count(b"\n") + (not text.endswith(b"\n") and bool(text))
    return len(text.split()) - lines if lightgcn else lines


@dataclass(frozen=True)
class Need:
    """An estimate: bytes in all, and its parts (name -> bytes)."""

    total: float
    parts: dict

    def describe(self) -> str:
        return ", ".join(f"{k} {gb(v)}" for k, v in self.parts.items() if v >= 0.05e9)


def load_need(rows: int) -> Need:
    return Need(BASE + LOAD_PER_ROW * rows, {"parse + split": LOAD_PER_ROW * rows})


def train_need(rows: int, n_train: int, n_users: int, n_items: int, dim: int,
               model: str = "lightgcn", layers: int = 3) -> Need:
    """Peak bytes of training (see the module docstring). NGCF keeps its concatenated layers
    (d·(L+1) wide) and two weight products per layer: counted as (L + 1) times LightGCN's step."""
    width = dim * ((layers + 1) if model == "ngcf" else 1)
    bitmap = n_users * n_items / 8 if n_users * n_items <= 1 << 31 else 0.0
    parts = {"split": SPLIT_PER_ROW * rows, "graph": GRAPH_PER_PAIR * n_train + bitmap,
             "model + optimiser + step": TRAIN_PER_NODE_DIM * (n_users + n_items) * width}
    return Need(BASE + sum(parts.values()), parts)


class NotEnoughMemory(MemoryError):
    """Raised before the work starts when it would not fit (the CLI: exit 6, EXIT_ENV, as an
    out-of-memory error during the work); the message says what it needs and what to change."""


def _check(need: Need, what: str, hint: str, log: Callable[[str], None] | None) -> None:
    have = available()
    if have is None:
        return
    if need.total > have:
        src = ("SOFTBPR_MAX_MEMORY" if os.environ.get("SOFTBPR_MAX_MEMORY")
               else "available memory")
        parts = f" ({need.describe()})" if need.describe() else ""
        raise NotEnoughMemory(f"{what} needs about {gb(need.total)} of memory{parts}, "
                        f"more than the {gb(have)} of {src}; {hint}")
    if log is not None and need.total > 0.5 * have:
        log(f"memory: {what} needs about {gb(need.total)} of the {gb(have)} available")


def check_load(path: str | Path, log: Callable[[str], None] | None = None,
               lightgcn: bool = False) -> int:
    """Stop before parsing a delimited file (or, `lightgcn`, a LightGCN-format dataset: the
    files `readers.lightgcn_files` finds, together) that cannot be loaded here; returns the
    estimated number of rows.
    Raises NotEnoughMemory naming the file, its size and what it would need."""
    from .readers import lightgcn_files, reading

    path = Path(path)
    # lightgcn: the files read_lightgcn will read (a folder's, or a *train* file's siblings)
    files = list(lightgcn_files(path).values()) if lightgcn else [path]
    rows, text = 0, 0.0
    for f in files:
        with reading(f):  # a truncated .gz: the reader's one-line DataError
            r, t = estimate_rows(f, lightgcn=lightgcn)
        rows, text = rows + r, text + t
    _check(load_need(rows), f"{path}: loading about {rows:,} rows ({gb(text)} of text)",
           "load a sample of the users (e.g. `softbpr data prepare FILE --users N` on a machine "
           "that can load it, or split the log by user beforehand) or use a machine with more "
           "memory", log)
    return rows


def check_train(split, dim: int, model: str = "lightgcn", layers: int = 3,
                log: Callable[[str], None] | None = None) -> Need:
    """Stop before building a model whose training cannot fit; returns the estimate."""
    rows = len(split.train) + len(split.valid) + len(split.test)
    sizes = (rows, len(split.train), split.n_users, split.n_items)
    need = train_need(*sizes, dim, model, layers)
    half = max(8, dim // 2)
    n = split.n_users + split.n_items
    _check(need, f"training {model} (d = {dim}) on {n:,} users + items and "
                 f"{len(split.train):,} train pairs",
           f"a smaller --dim shrinks the largest part (d = {half}: about "
           f"{gb(train_need(*sizes, half, model, layers).total)}), or use a machine (or GPU) "
           "with more memory", log)
    return need


__all__ = ["available", "check_load", "check_train", "estimate_rows", "load_need",
           "parse_bytes", "train_need"]
