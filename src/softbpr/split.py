"""Train/valid/test splits of `Interactions`, and `load_split(DataConfig)` that builds one.

Split rules (per user, with n = the user's number of interactions after de-duplication):
    n_test  = max(1, round(test_ratio * n))   and   n_valid = max(1, round(valid_ratio * n))
    when n >= 3 (a ratio of 0 gives 0); users with fewer than 3 interactions keep all in train.
- temporal: the user's interactions sorted by (timestamp, position in the file) -- ties in time
  are broken by file order -- the latest n_test go to test, the n_valid before them to valid.
  With the defaults (0.1 / 0.1) this is the paper's protocol: latest 10% -> test, the rest 80/10.
- random: the same counts, chosen by a seeded random permutation of each user's interactions.
- given: the files' own train/test(/valid); without a valid file, 10% of each user's train items
  (seeded, random; users with fewer than 2 train items keep theirs) are held out as valid.

Held-out pairs that also occur in train are dropped from valid/test (they are masked at ranking
time and could never be hit); users with no train interaction are dropped from valid/test (a
model cannot rank for them); valid pairs that are also test pairs are dropped from valid. Test
items never seen in train stay in test (a model can hardly rank them: they count as misses) and
are reported. Every such drop is printed with its count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .data import DataError, IdMap, Interactions, clean, dedupe, isin, make_idmap, unique
from .readers import detect_format, read_lightgcn, read_table, to_interactions


@dataclass(frozen=True)
class Pairs:
    """(user, item) index pairs, int64 [n] each."""

    users: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def csr(self, n_users: int, n_items: int) -> sp.csr_matrix:
        """Binary user x item matrix with sorted column indices."""
        m = sp.csr_matrix(
            (np.ones(len(self.users), dtype=np.float32), (self.users, self.items)),
            shape=(n_users, n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        m.sort_indices()
        return m


@dataclass(frozen=True)
class Split:
    """A dataset ready for training: train/valid/test pairs over shared id maps.

    truth: for synthetic data, the planted user x item preference matrix (CSR, 1 = the user truly
        likes the item), so diagnostics can tell false negatives from true ones; None otherwise.
    notes: what was done to the data (drops, hold-outs), one line each.
    test_ratio: the test share of a split made from one log (temporal/random); None for given
        train/test files.
    """

    name: str
    train: Pairs
    valid: Pairs
    test: Pairs
    user_map: IdMap
    item_map: IdMap
    truth: sp.csr_matrix | None = None
    notes: tuple[str, ...] = field(default=())
    test_ratio: float | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def summary(self) -> str:
        n = len(self.train) + len(self.valid) + len(self.test)
        dens = n / max(1, self.n_users * self.n_items)
        return (f"{self.name}: {self.n_users:,} users, {self.n_items:,} items, {n:,} interactions "
                f"(train {len(self.train):,} / valid {len(self.valid):,} / test "
                f"{len(self.test):,}), density {dens:.5f}")


def _per_user_counts(users_sorted: np.ndarray, n_users: int):
    counts = np.bincount(users_sorted, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(users_sorted)) - starts[users_sorted]
    return counts, rank


def _holdout_counts(counts: np.ndarray, ratio: float, min_n: int = 3) -> np.ndarray:
    if ratio <= 0:
        return np.zeros_like(counts)
    k = np.floor(ratio * counts + 0.5).astype(np.int64)
    return np.where(counts >= min_n, np.maximum(k, 1), 0)


def ordered_split(data: Interactions, order: np.ndarray, valid_ratio: float,
                  test_ratio: float, min_n: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, valid, test) over `data` rows, given a per-user order of rows.

    `order` must sort rows by user first; within a user, later rows are held out first.
    """
    u = data.users[order]
    counts, rank = _per_user_counts(u, data.n_users)
    n_test = _holdout_counts(counts, test_ratio, min_n)
    n_valid = _holdout_counts(counts, valid_ratio, min_n)
    # never hold out everything: at least one train interaction per user
    n_valid = np.minimum(n_valid, np.maximum(counts - n_test - 1, 0))
    from_end = counts[u] - rank  # 1 for the user's last row
    test_s = from_end <= n_test[u]
    valid_s = ~test_s & (from_end <= n_test[u] + n_valid[u])
    test = np.zeros(len(data), bool)
    valid = np.zeros(len(data), bool)
    test[order] = test_s
    valid[order] = valid_s
    return ~(test | valid), valid, test


def temporal_split(data: Interactions, valid_ratio=0.1, test_ratio=0.1):
    """Per user: latest `test_ratio` -> test, the `valid_ratio` before -> valid (see module doc)."""
    if data.times is None:
        raise DataError("the temporal split needs timestamps: give a timestamp column "
                        "(--columns user,item,timestamp) or use --split random")
    return ordered_split(data, user_time_order(data.users, data.times), valid_ratio, test_ratio)


def user_time_order(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Row order by (user, time, position in the file): `np.lexsort((arange, times, users))`.

    With whole-second times (the usual case) it is one stable argsort of the single int64 key
    user * span + (time - min): the same order, 2.5-5x faster than lexsort (10M rows: 2-5 s
    instead of 11-13 s on one core).
    """
    if len(times) and np.isfinite(times).all():
        lo, hi = float(times.min()), float(times.max())
        span = int(hi - lo) + 1
        n_users = int(users.max()) + 1
        if n_users * span < 2**62 and hi - lo < 2**53 and (times == np.floor(times)).all():
            key = users.astype(np.int64) * span + (times - lo).astype(np.int64)
            return np.argsort(key, kind="stable")
    return np.lexsort((np.arange(len(times)), times, users))


def random_split(data: Interactions, rng: np.random.Generator, valid_ratio=0.1, test_ratio=0.1):
    """Per user: a seeded random `test_ratio` -> test and `valid_ratio` -> valid."""
    order = np.lexsort((rng.random(len(data)), data.users))
    return ordered_split(data, order, valid_ratio, test_ratio)


def _split_given(parts: dict, seed: int, valid_ratio: float, name: str,
                 log: Callable[[str], None], notes: list[str] | None = None) -> Split:
    allu = np.concatenate([p[0] for p in parts.values()])
    alli = np.concatenate([p[1] for p in parts.values()])
    umap, uc = make_idmap(allu)
    imap, ic = make_idmap(alli)
    sizes = np.cumsum([0] + [len(p[0]) for p in parts.values()])
    coded = {k: Pairs(uc[a:b], ic[a:b]) for k, a, b in zip(parts, sizes[:-1], sizes[1:])}
    n_i = len(imap)
    notes = list(notes or [])

    def note(msg: str) -> None:
        notes.append(msg)
        log(msg)

    def unique_pairs(p: Pairs, what: str) -> Pairs:
        key = unique(p.users * n_i + p.items)
        if len(key) < len(p):
            note(f"{what}: dropped {len(p) - len(key):,} duplicate (user, item) pairs")
        return Pairs(key // n_i, key % n_i)

    train = unique_pairs(coded["train"], "train")
    if "valid" in coded:
        valid = unique_pairs(coded["valid"], "valid")
    else:
        rng = np.random.default_rng(seed)
        data = Interactions(train.users, train.items, None, umap, imap)
        tr, va, _ = ordered_split(data, np.lexsort((rng.random(len(train)), train.users)),
                                  valid_ratio, 0.0, min_n=2)
        valid = Pairs(train.users[va], train.items[va])
        train = Pairs(train.users[tr], train.items[tr])
        note(f"no valid file: held out {len(valid):,} random train pairs "
             f"({valid_ratio:.0%} of each user's train items, seed {seed}) as validation")
    test = unique_pairs(coded["test"], "test")
    return _finish(name, train, valid, test, umap, imap, None, notes, log)


def _finish(name, train: Pairs, valid: Pairs, test: Pairs, umap: IdMap, imap: IdMap, truth,
            notes: list[str], log, test_ratio: float | None = None) -> Split:
    """Apply the held-out rules of the module doc and report what they drop."""
    n_u, n_i = len(umap), len(imap)
    train_key = unique(train.users * n_i + train.items)
    has_train = np.bincount(train.users, minlength=n_u) > 0

    def clean(p: Pairs, what: str) -> Pairs:
        key = p.users * n_i + p.items
        overlap = isin(key, train_key)
        cold = ~has_train[p.users]
        if overlap.any():
            notes.append(m := f"{what}: dropped {int(overlap.sum()):,} pairs also in train")
            log(m)
        if (cold & ~overlap).any():
            notes.append(m := f"{what}: dropped {int((cold & ~overlap).sum()):,} pairs of "
                         f"{len(unique(p.users[cold])):,} users with no train interaction")
            log(m)
        keep = ~overlap & ~cold
        return Pairs(p.users[keep], p.items[keep])

    valid, test = clean(valid, "valid"), clean(test, "test")
    both = isin(valid.users * n_i + valid.items, test.users * n_i + test.items)
    if both.any():  # a held-out pair counts once: in test
        notes.append(m := f"valid: dropped {int(both.sum()):,} pairs also in test")
        log(m)
        valid = Pairs(valid.users[~both], valid.items[~both])
    unseen = ~isin(test.items, train.items)
    if unseen.any():
        notes.append(m := f"test: {int(unseen.sum()):,} pairs have items never seen in train; "
                     "they stay (as misses a model can hardly rank)")
        log(m)
    if len(train) == 0:
        raise DataError(f"{name}: the training set is empty")
    return Split(name, train, valid, test, umap, imap, truth, tuple(notes), test_ratio)


def require_test(split: Split) -> None:
    """DataError when the split has no test pair (test metrics would be NaN), naming the cause:
    a test share of 0, every user with fewer than 3 interactions (a temporal/random split keeps
    them in train; one pair per user is also what a LightGCN 'user item item ...' file read as a
    table gives), no test user in train, or an empty / fully dropped test file."""
    if len(split.test):
        return
    dropped = [n for n in split.notes if n.startswith("test:")]
    per_user = (np.bincount(split.train.users, minlength=split.n_users)
                + np.bincount(split.valid.users, minlength=split.n_users))
    if split.test_ratio is not None and split.test_ratio <= 0:
        cause = f"the test share is {split.test_ratio:g} (test_ratio), so no pair is held out"
        fix = "give a test_ratio above 0, e.g. --test-ratio 0.1"
    elif split.test_ratio is None and any("no train interaction" in n for n in dropped):
        cause = ("no test user appears in train" if len(dropped) == 1 else
                 "every test pair is also in train or of a user not in train")
        fix = "give train and test files of the same users (the same user ids in both)"
    elif split.test_ratio is not None and len(split.train) and per_user.max() < 3:
        one = int((per_user == 1).sum())
        cause = (f"every user has fewer than 3 interactions ({one:,} of {split.n_users:,} have "
                 "one), so all stay in train")
        fix = ("is it a LightGCN file with lines 'user item item ...'? then pass --format "
               "lightgcn; else give more interactions per user" if one > split.n_users // 2
               else "give more interactions per user")
    else:
        cause = "the test set is empty"
        fix = ("give a test file with pairs of users and items that are also in train, or a "
               "non-zero test_ratio")
    dropped = [n for n in split.notes if n.startswith("test:")]
    raise DataError(f"{split.name}: no test pairs, so the test metrics would be NaN: {cause}"
                    + (f" ({'; '.join(dropped)})" if dropped else "") + f"; {fix}")


def split_interactions(data: Interactions, how: str, seed: int, valid_ratio: float,
                       test_ratio: float, name: str, truth=None,
                       log: Callable[[str], None] = print,
                       notes: list[str] | None = None) -> Split:
    """De-duplicate, then split `data` by 'temporal' or 'random' (see module doc). `notes`:
    lines already noted about this data (they start the Split's notes)."""
    notes = list(notes or [])

    def note(msg: str) -> None:
        notes.append(msg)
        log(msg)

    data = dedupe(data, note)
    if how == "temporal":
        tr, va, te = temporal_split(data, valid_ratio, test_ratio)
    elif how == "random":
        tr, va, te = random_split(data, np.random.default_rng(seed), valid_ratio, test_ratio)
    else:
        raise DataError(f"split {how!r} needs a pre-split dataset; for a single file use "
                        "'temporal' or 'random'")
    small = np.bincount(data.users, minlength=data.n_users)
    n_small = int(((small > 0) & (small < 3)).sum())
    if n_small and (valid_ratio > 0 or test_ratio > 0):
        note(f"{n_small:,} users with fewer than 3 interactions are kept in train only")
    p = lambda m: Pairs(data.users[m], data.items[m])
    return _finish(name, p(tr), p(va), p(te), data.user_map, data.item_map, truth, notes, log,
                   test_ratio)


def split_table(table: dict[str, np.ndarray], name: str, how: str = "auto", seed: int = 0,
                valid_ratio: float = 0.1, test_ratio: float = 0.1, *, positives=None,
                min_rating: float | None = None, user_core: int = 0, item_core: int = 0,
                n_users: int | None = None, log: Callable[[str], None] = print) -> Split:
    """The one ingestion path of an interaction log (`softbpr train` on a file and
    `softbpr data prepare` both come here): raw columns (`readers.read_table`) -> positive rows
    (`readers.to_interactions`) -> de-duplicate, k-core, user subset (`data.clean`; the subset
    uses `seed`) -> split (`split_interactions`; how = 'auto': temporal when there are
    timestamps, else random). Every step's note is logged and kept in the Split's notes."""
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        log(msg)

    if how == "auto":
        how = "temporal" if "timestamp" in table else "random"
    data = to_interactions(table, positives, min_rating, note)
    data = clean(data, user_core, item_core, n_users, seed, note)
    return split_interactions(data, how, seed, valid_ratio, test_ratio, name, log=log,
                              notes=notes)


def load_split(cfg, log: Callable[[str], None] = print) -> Split:
    """Build the `Split` a `DataConfig` describes (built-in synthetic data or a path)."""
    from .synthetic import SYNTHETIC, generate

    if cfg.data in SYNTHETIC:
        syn = generate(SYNTHETIC[cfg.data], seed=cfg.seed)
        split = cfg.split if cfg.split != "auto" else "temporal"
        data = syn.interactions
        if cfg.kcore > 1:
            raise DataError("k-core filtering of the synthetic data is not supported")
        return split_interactions(data, split, cfg.seed, cfg.valid_ratio, cfg.test_ratio,
                                  cfg.data, truth=syn.truth, log=log)
    path = Path(cfg.data).expanduser()
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    name = path.name if path.is_dir() else path.name.split(".")[0]
    if fmt == "lightgcn":
        if cfg.format == "auto" and path.is_file():
            log(f"{path.name}: lines 'user item item ...': read as the LightGCN format")
        split = cfg.split if cfg.split != "auto" else "given"
        from .memory import check_load

        check_load(path, log, lightgcn=True)  # stop early when it cannot be loaded here
        given = read_lightgcn(path)  # a folder, or a *train* file with its *test* sibling
        for msg in given.notes:
            log(msg)
        if split == "given":
            if cfg.kcore > 1:
                raise DataError("--kcore applies to single files; a given split is used as is")
            return _split_given(given.parts, cfg.seed, cfg.valid_ratio, name, log,
                                list(given.notes))
        # re-split the union of the files
        table = {"user": np.concatenate([p[0] for p in given.parts.values()]),
                 "item": np.concatenate([p[1] for p in given.parts.values()])}
    elif fmt in ("csv", "recbole", "parquet"):
        if not path.is_file():
            raise DataError(f"{path}: the {fmt} format reads one file")
        if cfg.split == "given":
            raise DataError(f"{path}: --split given needs a LightGCN-format folder "
                            "(train.txt, test.txt[, valid.txt])")
        if fmt != "parquet":  # stop early when the log cannot be loaded here (memory.py)
            from .memory import check_load

            check_load(path, log)
        table = read_table(path, cfg.columns, ("user", "item", "timestamp"), fmt)
        split = cfg.split
    else:
        raise DataError(f"unknown format {fmt!r}; choose auto, lightgcn, csv, recbole or parquet")
    return split_table(table, name, split, cfg.seed, cfg.valid_ratio, cfg.test_ratio,
                       user_core=cfg.kcore, item_core=cfg.kcore, log=log)
