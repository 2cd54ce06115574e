"""Read speed of the interaction readers on a generated UserBehavior-like file.

    python bench/read.py                      # 20M rows, file cached in $TMPDIR/softbpr-bench
    python bench/read.py --rows 2000000 --gzip

The file looks like Taobao's UserBehavior.csv (``user,item,category,behavior,timestamp``, no
header, behaviours pv/buy/cart/fav as strings, ~35 bytes a row). It is generated with numpy
(bytes assembled column by column), so making it costs seconds, not minutes. Reported: rows/s of
`read_table` (parse only) and of `read_delimited` (parse + factorise ids into an IdMap).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from softbpr.readers import read_delimited, read_table

COLUMNS = "user,item,category,behavior,timestamp"


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative ints, left-aligned in `width` bytes, NUL-padded. [n, width]"""
    d = np.zeros((len(v), width), dtype=np.uint8)
    n_dig = np.maximum(1, np.floor(np.log10(np.maximum(v, 1))).astype(int) + 1)
    x = v.copy()
    for k in range(width - 1, -1, -1):  # least significant digit into column n_dig-1, ...
        col = n_dig - (width - k)
        ok = col >= 0
        d[np.flatnonzero(ok), col[ok]] = 48 + (x[ok] % 10)
        x[ok] //= 10
    return d


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    rng = np.random.default_rng(seed)
    beh = np.zeros((4, 5), dtype=np.uint8)
    for k, b in enumerate([b"pv", b"buy", b"cart", b"fav"]):
        beh[k, :len(b)] = np.frombuffer(b, dtype=np.uint8)
    comma, nl = np.full((1, 1), 44, np.uint8), np.full((1, 1), 10, np.uint8)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as fh:
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            parts = [
                _digits(rng.integers(1, 1_018_011, m), 7),  # users
                _digits(rng.integers(1, 5_163_070, m), 7),  # items
                _digits(rng.integers(1, 5_162_429, m), 7),  # categories
                beh[rng.choice(4, m, p=[0.895, 0.02, 0.055, 0.03])],
                _digits(rng.integers(1511539200, 1512316800, m), 10),  # 2017-11-25..12-03
            ]
            cols = [parts[0], comma.repeat(m, 0), parts[1], comma.repeat(m, 0), parts[2],
                    comma.repeat(m, 0), parts[3], comma.repeat(m, 0), parts[4], nl.repeat(m, 0)]
            block = np.hstack(cols).ravel()
            fh.write(block[block != 0].tobytes())
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "softbpr-bench"))
    ap.add_argument("--gzip", action="store_true", help="also time the gzip-compressed file")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"userbehavior-{args.rows}.csv"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.rows)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f}s")
    files = [path]
    if args.gzip:
        gz = path.with_name(path.name + ".gz")
        if not gz.exists():
            with open(path, "rb") as a, gzip.open(gz, "wb", compresslevel=1) as b:
                shutil.copyfileobj(a, b, 1 << 22)
        files.append(gz)
    for f in files:
        for _ in range(args.repeat):
            t = time.perf_counter()
            tab = read_table(f, COLUMNS, ("user", "item", "behavior", "timestamp"))
            t_parse = time.perf_counter() - t
            n = len(tab["user"])
            del tab
            t = time.perf_counter()
            data = read_delimited(f, COLUMNS)
            t_all = time.perf_counter() - t
            print(f"{f.name}: {n:,} rows | read_table {t_parse:.1f}s = {n / t_parse / 1e6:.2f}M "
                  f"rows/s | read_delimited (+ id maps) {t_all:.1f}s = {n / t_all / 1e6:.2f}M "
                  f"rows/s | {data.n_users:,} users, {data.n_items:,} items")
            del data


if __name__ == "__main__":
    main()
