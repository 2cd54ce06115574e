"""Scale data on demand: `softbpr data synth` streams a synthetic interaction log of any size.

    softbpr data synth --users 2M --items 1M --interactions 100M --out big.csv.gz

The built-in `synthetic` dataset (synthetic.py) scores every user against every item, a dense
[U, I] block: fine at 3,000 x 2,000, impossible at 2M x 1M. This generator keeps its planted
structure but *samples* instead of scoring, one block of users at a time, so memory is
O(users + items + one block) and the rows go straight to disk. The story, per user u:

1. Taste blocks: `clusters` centres c_k ~ N(0, I_d) (d = 16). Each item belongs to one
   cluster, drawn uniformly; user u has a home cluster h_u and a taste p_u = c_h + 0.7 N(0, I_d),
   as in synthetic.py. Its preference over clusters is softmax(<p_u, c_k> / sqrt(d)), so most
   of a user's items come from its home block and a few related blocks.
2. Popularity: item i has a power-law weight w_i = (rank_i + 10)^(-0.8) over a random ranking
   (synthetic.py's law); within a cluster, items are drawn in proportion to w_i.
3. Activity: n_u ~ LogNormal(log(K / U), 0.5), at least 1 and at most I / 2, rescaled so the
   counts add up to exactly K (the requested number of interactions).
4. Noise: a share `noise` (5%) of the draws come from the global popularity law, whatever the
   user's taste (clicks without preference).
5. No (user, item) pair occurs twice: repeated draws are redrawn, and the few users still short
   after a few rounds get uniform draws among the items they do not have yet.
6. Timestamps: each user is active over a window (start ~ U(0, 300) days, length ~ U(30, 180)
   days, from 2017-07-14 = Unix 1.5e9); events are spread uniformly in it, items of the user's
   preferred clusters slightly earlier (drift 0.3), so a temporal split differs from a random one.

Every draw of a block of `SEED_BLOCK` users comes from `numpy.random.default_rng([seed, block])`
(item tables from `[seed]`), so the file depends on (users, items, interactions, clusters, seed)
only, not on how much is written at a time. Rows are grouped by user, by time within a user;
ids are integers (users 0..U-1, items 0..I-1; an item nobody drew does not occur).
Output: CSV with a header `user,item,timestamp`, gzip-compressed when the name ends in .gz
(level 1: about 3x smaller than plain, at a fraction of gzip's default cost).
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import DataError

SEED_BLOCK = 4096  # users per RNG stream (fixed: the output does not depend on WRITE_ROWS)
WRITE_ROWS = 1 << 21  # rows formatted and written at a time (~50 MB of text)
T0 = 1_500_000_000  # Unix seconds of day 0
DAY = 86_400
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_count(text: str | int, what: str = "count") -> int:
    """'2M' -> 2_000_000; also 10k, 1.5M, 1B, 1e6, 2_000_000, 2,000,000."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    s = str(text).strip().lower().replace("_", "").replace(",", "")
    m = re.fullmatch(r"(\d+(?:\.\d*)?(?:e\d+)?)([kmbg]?)", s)
    if not m:
        raise ValueError(f"{what}: {text!r} is not a count (examples: 5000, 10k, 2M, 1.5B)")
    value = float(m.group(1)) * _SUFFIX[m.group(2)]
    if value != int(value):
        raise ValueError(f"{what}: {text!r} is not a whole number")
    return int(value)


@dataclass(frozen=True)
class SynthSpec:
    """Sizes and shape of a streamed synthetic log (the module docstring gives the story)."""

    n_users: int
    n_items: int
    n_interactions: int
    clusters: int | None = None  # None: 16, or one per item when there are fewer items
    dim: int = 16
    activity_sigma: float = 0.5
    noise: float = 0.05
    pop_exponent: float = 0.8
    drift: float = 0.3

    def __post_init__(self):
        if self.clusters is None:
            object.__setattr__(self, "clusters", min(16, self.n_items))

    def check(self) -> None:
        U, I, K = self.n_users, self.n_items, self.n_interactions
        if U < 1 or I < 2 or K < 1:
            raise ValueError(f"synth needs at least 1 user, 2 items and 1 interaction; got "
                             f"{U:,} users, {I:,} items, {K:,} interactions")
        if K < U:
            raise ValueError(f"--interactions {K:,} is fewer than --users {U:,}: every user has "
                             "at least one interaction; ask for fewer users or more interactions")
        cap = max_per_user(I)
        if K > U * cap:
            raise ValueError(f"--interactions {K:,} is more than {U:,} users x {cap:,} items "
                             f"(at most half the catalogue per user): ask for fewer interactions "
                             "or more items")
        if not 1 <= self.clusters <= I:
            raise ValueError(f"--clusters must be in 1..{I:,} (the number of items), "
                             f"got {self.clusters}")


def max_per_user(n_items: int) -> int:
    return max(1, n_items // 2)


def user_counts(spec: SynthSpec, seed: int) -> np.ndarray:
    """Interactions per user, int64 [U], summing to exactly n_interactions (step 3)."""
    U, K, cap = spec.n_users, spec.n_interactions, max_per_user(spec.n_items)
    rng = np.random.default_rng([seed, 0])
    raw = np.exp(rng.normal(0.0, spec.activity_sigma, size=U))  # mean-free shape
    n = np.ones(U, dtype=np.int64)
    left = K - U  # beyond the one interaction every user has
    while left > 0:
        room = cap - n
        open_ = room > 0
        share = raw * open_
        want = share / share.sum() * left
        add = np.minimum(np.floor(want).astype(np.int64), room)
        frac_left = left - int(add.sum())
        if frac_left > 0:  # largest remainders first, among users with room left
            rest = np.where(room - add > 0, want - np.floor(want), -1.0)
            top = np.argsort(-rest, kind="stable")[:frac_left]
            top = top[rest[top] >= 0]
            add[top] += 1
        n += add
        left -= int(add.sum())
    return n


@dataclass
class _Tables:
    """Per-item tables shared by every block (drawn once from rng([seed]))."""

    centres: np.ndarray  # [C, d]
    by_cluster: np.ndarray  # int64 [I]: items sorted by cluster
    cum_in: np.ndarray  # float64 [I]: cluster c's items occupy (c, c + 1], cumulative weight
    cluster_ok: np.ndarray  # bool [C]: clusters that hold an item
    cum_all: np.ndarray  # float64 [I]: global cumulative popularity, in (0, 1]
    cluster_of: np.ndarray  # int64 [I]: each item's cluster


def _tables(spec: SynthSpec, seed: int) -> _Tables:
    rng = np.random.default_rng([seed])
    I, C = spec.n_items, spec.clusters
    centres = rng.standard_normal((C, spec.dim))
    w = (rng.permutation(I) + 10.0) ** (-spec.pop_exponent)
    cl = rng.integers(C, size=I)
    order = np.argsort(cl, kind="stable")
    cl_sorted = cl[order]
    ws = w[order]
    sizes = np.bincount(cl, minlength=C)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    csum = np.cumsum(ws)
    before = np.concatenate([[0.0], csum])[starts]  # cumulative weight before each cluster
    tot = np.bincount(cl, weights=w, minlength=C)
    cum_in = cl_sorted + (csum - before[cl_sorted]) / np.maximum(tot[cl_sorted], 1e-300)
    # guard the last item of each cluster against rounding just below c + 1
    last = starts + sizes - 1
    cum_in[last[sizes > 0]] = np.flatnonzero(sizes > 0) + 1.0
    cum_all = np.cumsum(w) / w.sum()
    cum_all[-1] = 1.0
    return _Tables(centres, order.astype(np.int64), cum_in, sizes > 0, cum_all, cl)


def _draw(rng, t: _Tables, users: np.ndarray, cum_c: np.ndarray, pref_rank: np.ndarray,
          noise: float):
    """One draw per entry of `users` (block-local indices): (items, affinity rank in [0, 1])."""
    n = len(users)
    C = cum_c.shape[1]
    is_noise = rng.random(n) < noise
    # cluster by the user's cumulative preference: row offsets make one flat search
    flat = (cum_c + np.arange(cum_c.shape[0])[:, None]).ravel()
    c = np.searchsorted(flat, users + rng.random(n), side="right") - users * C
    c = np.minimum(c, C - 1)
    pos = np.searchsorted(t.cum_in, c + rng.random(n), side="right")
    items = t.by_cluster[np.minimum(pos, len(t.by_cluster) - 1)]
    arank = pref_rank[users, c] / max(1, C - 1)
    k = int(is_noise.sum())
    if k:
        g = np.searchsorted(t.cum_all, rng.random(k), side="right")
        items[is_noise] = np.minimum(g, len(t.cum_all) - 1)
        arank[is_noise] = rng.random(k)
    return items, arank


def _block(spec: SynthSpec, t: _Tables, seed: int, b: int, counts: np.ndarray):
    """Rows of users [b * SEED_BLOCK, ...): (users, items, timestamps) int64, sorted by (user,
    time); every user gets counts[u] distinct items."""
    rng = np.random.default_rng([seed, 1, b])
    lo = b * SEED_BLOCK
    B = len(counts)
    I, C, d = spec.n_items, spec.clusters, spec.dim
    home = rng.integers(C, size=B)
    p = t.centres[home] + 0.7 * rng.standard_normal((B, d))
    logits = p @ t.centres.T / np.sqrt(d)  # [B, C]
    logits[:, ~t.cluster_ok] = -np.inf
    prob = np.exp(logits - logits.max(1, keepdims=True))
    cum_c = np.cumsum(prob, 1)
    cum_c /= cum_c[:, -1:]
    cum_c[:, -1] = 1.0
    pref_rank = np.argsort(np.argsort(-logits, 1), 1)  # 0 = the user's favourite cluster
    need = counts.copy()
    got_u, got_i, got_a = [], [], []
    taken = np.zeros(0, dtype=np.int64)  # sorted keys local_user * I + item
    for _round in range(8):
        if not need.any():
            break
        u = np.repeat(np.arange(B), need)
        it, ar = _draw(rng, t, u, cum_c, pref_rank, spec.noise)
        key = u * I + it
        order = np.argsort(key, kind="stable")
        ks = key[order]
        first = np.ones(len(ks), dtype=bool)
        np.not_equal(ks[1:], ks[:-1], out=first[1:])  # first draw of each pair ...
        first &= ~_in_sorted(taken, ks)  # ... that is not taken yet
        fresh = order[first]
        got_u.append(u[fresh])
        got_i.append(it[fresh])
        got_a.append(ar[fresh])
        # both runs sorted and disjoint: a stable sort merges them in linear time
        taken = np.sort(np.concatenate([taken, ks[first]]), kind="stable")
        need = need - np.bincount(u[fresh], minlength=B)
    for lu in np.flatnonzero(need):  # rare: users with a large share of a skewed catalogue
        have = taken[(taken >= lu * I) & (taken < (lu + 1) * I)] - lu * I
        free = np.setdiff1d(np.arange(I), have, assume_unique=True)
        pick = rng.choice(free, size=int(need[lu]), replace=False)
        got_u.append(np.full(len(pick), lu))
        got_i.append(pick)
        got_a.append(rng.random(len(pick)))
    u = np.concatenate(got_u)
    it = np.concatenate(got_i)
    ar = np.concatenate(got_a)
    start = rng.uniform(0, 300 * DAY, size=B)
    length = rng.uniform(30 * DAY, 180 * DAY, size=B)
    frac = np.clip((1 - spec.drift) * rng.random(len(u)) + spec.drift * ar, 0, 1)
    ts = np.round(T0 + start[u] + frac * length[u]).astype(np.int64)
    order = np.lexsort((it, ts, u))
    return u[order] + lo, it[order], ts[order]


def _in_sorted(sorted_keys: np.ndarray, q: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(q), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, q), len(sorted_keys) - 1)
    return sorted_keys[pos] == q


_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)


def format_rows(cols: list[np.ndarray]) -> bytes:
    """Non-negative int64 columns -> b"a,b,c\\n..." without a Python loop per row (numpy's
    savetxt formats each value in Python: ~10x slower at 100M rows)."""
    n = len(cols[0])
    widths = [np.searchsorted(_POW10, c, side="right") + 1 for c in cols]
    line = sum(widths) + len(cols)
    ends = np.cumsum(line)
    pos = ends - line  # where each row's next field starts
    buf = np.empty(int(ends[-1]) if n else 0, dtype=np.uint8)
    for j, (c, w) in enumerate(zip(cols, widths)):
        v = c.copy()
        at = pos + w - 1  # the last digit
        for k in range(int(w.max()) if n else 0):
            m = w > k
            if m.all():
                buf[at - k] = v % 10 + 48
            else:
                buf[(at - k)[m]] = v[m] % 10 + 48
            v //= 10
        pos = pos + w
        buf[pos] = ord(",") if j < len(cols) - 1 else ord("\n")
        pos = pos + 1
    return buf.tobytes()


def write_synth(spec: SynthSpec, out: str | Path, seed: int = 2024, overwrite: bool = False,
                log: Callable[[str], None] = print, every: float = 10.0) -> dict:
    """Stream the log to `out` (.csv or .csv.gz); returns counts and timings.

    The file is written as `.<name>.part` beside the target and renamed at the end, so a broken
    run never leaves a complete-looking file. `log` gets a progress line (rows, rate, ETA)
    about every `every` seconds, and a summary.
    """
    spec.check()
    if not 0 <= seed < 2**63:
        raise ValueError(f"--seed must be in 0..2**63-1, got {seed}")
    out = Path(out)
    if not out.name.endswith((".csv", ".csv.gz")):
        raise ValueError(f"--out {out}: synth writes CSV text; give a name ending in .csv or "
                         ".csv.gz (gzip)")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if out.parent and not out.parent.exists():
        raise DataError(f"{out.parent}: no such folder")
    t0 = time.perf_counter()
    counts = user_counts(spec, seed)
    tables = _tables(spec, seed)
    item_seen = np.zeros(spec.n_items, dtype=bool)
    part = out.with_name(f".{out.name}.part")
    gz = out.suffix == ".gz"
    done, last = 0, t0
    try:
        with gzip.open(part, "wb", compresslevel=1) if gz else open(part, "wb") as fh:
            fh.write(b"user,item,timestamp\n")
            pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            n_pending = 0
            n_blocks = (spec.n_users + SEED_BLOCK - 1) // SEED_BLOCK
            for b in range(n_blocks):
                rows = _block(spec, tables, seed, b, counts[b * SEED_BLOCK:(b + 1) * SEED_BLOCK])
                item_seen[rows[1]] = True
                pending.append(rows)
                n_pending += len(rows[0])
                if n_pending < WRITE_ROWS and b < n_blocks - 1:
                    continue
                fh.write(format_rows([np.concatenate(c) for c in zip(*pending)]))
                done += n_pending
                pending, n_pending = [], 0
                now = time.perf_counter()
                if now - last >= every and done < spec.n_interactions:
                    rate = done / (now - t0)
                    log(f"synth: {done:,} / {spec.n_interactions:,} rows "
                        f"({done / spec.n_interactions:.0%}), {rate / 1e6:.2f}M rows/s, "
                        f"ETA {(spec.n_interactions - done) / rate:.0f} s")
                    last = now
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    secs = time.perf_counter() - t0
    info = {"path": str(out), "users": spec.n_users, "items": spec.n_items,
            "items_used": int(item_seen.sum()), "interactions": done,
            "bytes": out.stat().st_size, "seconds": round(secs, 2), "seed": seed,
            "clusters": spec.clusters}
    log(f"synth: wrote {done:,} interactions of {spec.n_users:,} users over "
        f"{info['items_used']:,} of {spec.n_items:,} items to {out} "
        f"({info['bytes'] / 1e6:,.1f} MB, {secs:.1f} s, {done / max(secs, 1e-9) / 1e6:.2f}M rows/s)")
    return info


__all__ = ["SynthSpec", "format_rows", "parse_count", "user_counts", "write_synth"]


# ----------------------------------------------------------------------------------------------
# Command line: `softbpr data synth` (the CLI's data group calls these two)


def add_parser(dsub) -> None:
    """Add `synth` to the `softbpr data` subparsers."""
    s = dsub.add_parser("synth", help="write a synthetic interaction log of any size "
                                      "(streamed to disk; planted taste blocks, popularity, time)")
    s.add_argument("--users", required=True, help="number of users, e.g. 2M")
    s.add_argument("--items", required=True, help="number of items, e.g. 1M")
    s.add_argument("--interactions", required=True, help="number of rows, e.g. 100M (exact)")
    s.add_argument("--out", required=True, help="output file: .csv, or .csv.gz (gzip level 1)")
    s.add_argument("--clusters", type=int, help="taste blocks (default 16)")
    s.add_argument("--seed", type=int, default=2024, help="seed (default 2024)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args) -> int:
    spec = SynthSpec(parse_count(args.users, "--users"), parse_count(args.items, "--items"),
                     parse_count(args.interactions, "--interactions"), clusters=args.clusters)
    write_synth(spec, args.out, seed=args.seed, overwrite=args.overwrite,
                log=(lambda s: None) if args.quiet else print)
    return 0
