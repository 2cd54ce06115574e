"""Scale data on demand (`softbpr data synth`, softbpr/synth.py): exact counts, determinism, no
duplicate pairs, planted structure (taste blocks, power-law popularity, drift in time), and the
file loads through the normal readers and split."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

from softbpr.readers import read_table
from softbpr.synth import SynthSpec, format_rows, parse_count, user_counts, write_synth


def _synth(tmp_path, name="s.csv", seed=7, **kw):
    spec = SynthSpec(**{"n_users": 3000, "n_items": 2000, "n_interactions": 90_000, **kw})
    info = write_synth(spec, tmp_path / name, seed=seed, log=lambda s: None)
    return info, read_table(tmp_path / name)


def test_parse_count():
    assert parse_count("2M") == 2_000_000
    assert parse_count("100m") == 100_000_000
    assert parse_count("1.5k") == 1500
    assert parse_count("2_000") == parse_count("2,000") == 2000
    assert parse_count("1e6") == 1_000_000
    assert parse_count(12) == 12
    for bad in ("x", "1.5", "-3", "2MB"):
        with pytest.raises(ValueError):
            parse_count(bad)


def test_format_rows_matches_python():
    rng = np.random.default_rng(0)
    cols = [rng.integers(0, 10 ** rng.integers(1, 12, size=500)) for _ in range(3)]
    cols[0][:3] = [0, 9, 10]
    text = format_rows(cols).decode()
    want = "".join(f"{a},{b},{c}\n" for a, b, c in zip(*cols))
    assert text == want


def test_user_counts_exact_and_capped():
    spec = SynthSpec(1000, 40, 15_000)  # mean 15 per user, cap 20: many users hit the cap
    n = user_counts(spec, 3)
    assert n.sum() == 15_000 and n.min() >= 1 and n.max() <= 20
    assert (n == 20).sum() > 50  # the cap binds, and the counts still add up
    assert np.array_equal(n, user_counts(spec, 3))


def test_counts_distinct_pairs_and_determinism(tmp_path):
    info, t = _synth(tmp_path)
    u, i, ts = t["user"], t["item"], t["timestamp"]
    assert info["interactions"] == len(u) == 90_000
    assert u.min() == 0 and u.max() == 2999 and len(np.unique(u)) == 3000  # every user occurs
    assert i.min() >= 0 and i.max() < 2000
    key = u * 2000 + i
    assert len(np.unique(key)) == len(key)  # no (user, item) pair twice
    assert np.all(np.diff(u) >= 0)  # grouped by user, in time order within a user
    same = np.diff(u) == 0
    assert np.all(np.diff(ts)[same] >= 0)
    # same seed -> the same bytes; another seed -> another file
    write_synth(SynthSpec(3000, 2000, 90_000), tmp_path / "again.csv", seed=7, log=lambda s: None)
    assert (tmp_path / "s.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()
    write_synth(SynthSpec(3000, 2000, 90_000), tmp_path / "other.csv", seed=8, log=lambda s: None)
    assert (tmp_path / "s.csv").read_bytes() != (tmp_path / "other.csv").read_bytes()


def test_output_does_not_depend_on_write_chunks(tmp_path, monkeypatch):
    from softbpr import synth

    _synth(tmp_path, "a.csv", n_users=10_000, n_interactions=50_000)
    monkeypatch.setattr(synth, "WRITE_ROWS", 1000)  # many small writes
    _synth(tmp_path, "b.csv", n_users=10_000, n_interactions=50_000)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_planted_structure(tmp_path):
    _, t = _synth(tmp_path, n_users=4000, n_items=5000, n_interactions=200_000)
    u, i = t["user"], t["item"]
    pop = np.sort(np.bincount(i, minlength=5000))[::-1].astype(float)
    # power-law-ish popularity: the top 1% of items get several times their share, and the
    # rank-frequency curve falls with a clearly negative log-log slope over the body
    assert pop[:50].sum() / pop.sum() > 0.05
    r = np.arange(1, len(pop) + 1)
    body = (r > 10) & (r < 2500) & (pop > 0)
    slope = np.polyfit(np.log(r[body]), np.log(pop[body]), 1)[0]
    assert slope < -0.3
    # taste blocks: two users share far more items than chance when they share a home block;
    # measured as the concentration of a user's items: its top cluster-mates co-occur
    from softbpr.synth import _tables

    tab = _tables(SynthSpec(4000, 5000, 200_000), 7)
    cluster = tab.cluster_of
    top_share = []
    for user in range(200):
        c = np.bincount(cluster[i[u == user]], minlength=16)
        top_share.append(c.max() / c.sum())
    assert np.mean(top_share) > 0.3  # 1/16 = 0.06 without taste blocks
    # drift: items of the user's main block come earlier in its window than the others
    first = np.searchsorted(u, u, side="left")
    n_u = np.bincount(u)[u]
    where = (np.arange(len(u)) - first) / np.maximum(n_u - 1, 1)  # 0 = first event, 1 = last
    counts = np.zeros((4000, 16), dtype=np.int64)
    np.add.at(counts, (u, cluster[i]), 1)
    main = cluster[i] == counts.argmax(1)[u]
    assert where[main].mean() < where[~main].mean() - 0.05


def test_temporal_drift_and_gzip(tmp_path):
    info, t = _synth(tmp_path, "s.csv.gz", n_users=500, n_items=400, n_interactions=10_000)
    with gzip.open(tmp_path / "s.csv.gz", "rt") as fh:
        assert fh.readline() == "user,item,timestamp\n"
    assert len(t["user"]) == 10_000 and info["bytes"] == (tmp_path / "s.csv.gz").stat().st_size
    assert t["timestamp"].min() >= 1.5e9


def test_loads_and_splits(tmp_path):
    from types import SimpleNamespace

    from softbpr.split import load_split

    _synth(tmp_path, n_users=800, n_items=600, n_interactions=24_000)
    cfg = SimpleNamespace(data=str(tmp_path / "s.csv"), format="auto", split="auto",
                          columns="user,item,timestamp", kcore=0, seed=1, valid_ratio=0.1,
                          test_ratio=0.1)
    split = load_split(cfg, log=lambda s: None)
    assert split.n_users == 800
    assert len(split.train) + len(split.valid) + len(split.test) == 24_000


@pytest.mark.parametrize("kw, msg", [
    ({"n_users": 100, "n_items": 10, "n_interactions": 50}, "fewer than --users"),
    ({"n_users": 10, "n_items": 10, "n_interactions": 60}, "at most half the catalogue"),
    ({"n_users": 10, "n_items": 10, "n_interactions": 20, "clusters": 11},
     "--clusters"),
])
def test_bad_sizes(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        write_synth(SynthSpec(**kw), tmp_path / "x.csv", log=lambda s: None)
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "x.csv").write_text("keep")
    with pytest.raises(FileExistsError):
        write_synth(SynthSpec(10, 10, 20), tmp_path / "x.csv", log=lambda s: None)
    assert (tmp_path / "x.csv").read_text() == "keep"


@pytest.mark.parametrize("name, seed, msg", [
    ("x.parquet", 1, "--out"), ("x.txt", 1, "--out"), ("x.gz", 1, "--out"),
    ("x.csv", -1, "--seed"), ("x.csv.gz", 2**63, "--seed"),
])
def test_cli_refuses_other_suffixes_and_bad_seeds(tmp_path, capsys, name, seed, msg):
    """Only .csv / .csv.gz (it writes CSV text), seeds in 0..2**63-1: one line naming the
    flag, exit 2, and no file written."""
    from softbpr.cli import main

    rc = main(["data", "synth", "--users", "10", "--items", "10", "--interactions", "20",
               "--seed", str(seed), "--out", str(tmp_path / name), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"softbpr: error: {msg}") and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_cli(tmp_path):
    out = tmp_path / "c.csv"
    r = subprocess.run([sys.executable, "-m", "softbpr", "data", "synth", "--users", "1k",
                        "--items", "500", "--interactions", "20k", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "wrote 20,000 interactions" in r.stdout
    assert len(out.read_text().splitlines()) == 20_001
    r = subprocess.run([sys.executable, "-m", "softbpr", "data", "synth", "--users", "2M",
                        "--items", "10", "--interactions", "1k", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    assert r.stderr.startswith("softbpr: error: ") and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("times", ["ties", "offset", "negative", "fractional", "huge", "nan"])
def test_user_time_order_is_lexsort(times):
    """The fast (user, time, file position) order of the temporal split equals the lexsort."""
    from softbpr.split import user_time_order

    rng = np.random.default_rng(0)
    n = 5000
    users = rng.integers(0, 3000, n)
    t = {"ties": rng.integers(0, 5, n).astype(float),
         "offset": rng.integers(10**9, 10**9 + 5, n).astype(float),
         "negative": rng.integers(-10**6, 10**6, n).astype(float),
         "fractional": rng.integers(0, 50, n) + rng.choice([0.0, 0.5], n),
         "huge": rng.choice([0.0, 4e15], n),  # users x span too large for one int64 key
         "nan": np.where(rng.random(n) < 0.01, np.nan, rng.integers(0, 9, n).astype(float)),
         }[times]
    want = np.lexsort((np.arange(n), t, users))
    assert np.array_equal(user_time_order(users, t), want)


def test_dedupe_fast_path_and_duplicates():
    from softbpr.data import IdMap, Interactions, dedupe

    u = np.array([0, 1, 0, 2, 1])
    i = np.array([3, 3, 4, 0, 1])
    d = Interactions(u, i, np.array([5.0, 4, 3, 2, 1]), IdMap(np.arange(3)), IdMap(np.arange(5)))
    assert dedupe(d, log=lambda s: None) is d  # nothing to drop: the same object, no copy
    u2 = np.append(u, 0)
    i2 = np.append(i, 3)
    d2 = Interactions(u2, i2, np.array([5.0, 4, 3, 2, 1, 0]), d.user_map, d.item_map)
    lines = []
    out = dedupe(d2, log=lines.append)
    assert len(out) == 5 and lines and out.times[out.users == 0].min() == 0  # earliest kept
