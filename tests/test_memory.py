"""Bad input at scale stops early with what it would need (softbpr/memory.py): a file larger than
the memory budget, a model that cannot fit; ids beyond int32 and catalogues beyond the exact
train-pair bitmap work."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from softbpr.memory import (
    NotEnoughMemory,
    available,
    check_load,
    check_train,
    estimate_rows,
    parse_bytes,
    train_need,
)
from softbpr.synth import SynthSpec, write_synth


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("mem")
    write_synth(SynthSpec(20_000, 3000, 400_000), d / "log.csv", seed=1, log=lambda s: None)
    with open(d / "log.csv", "rb") as src, gzip.open(d / "log.csv.gz", "wb") as dst:
        dst.write(src.read())
    return d / "log.csv"


def _cfg(path):
    return SimpleNamespace(data=str(path), format="auto", split="auto",
                           columns="user,item,timestamp", kcore=0, seed=1, valid_ratio=0.1,
                           test_ratio=0.1)


def test_parse_bytes_and_budget(monkeypatch):
    assert parse_bytes("14G") == 14e9 and parse_bytes("500MB") == 5e8 and parse_bytes("2e9") == 2e9
    assert parse_bytes("1.5GiB") == 1.5e9
    with pytest.raises(ValueError):
        parse_bytes("lots")
    monkeypatch.setenv("SOFTBPR_MAX_MEMORY", "3G")
    assert available() == 3e9


def test_row_estimate(log_csv):
    rows, text = estimate_rows(log_csv, sample=1 << 16)  # a sample smaller than the file
    assert abs(rows - 400_000) / 400_000 < 0.1
    assert text == log_csv.stat().st_size
    rows_gz, text_gz = estimate_rows(log_csv.with_suffix(".csv.gz"), sample=1 << 16)
    assert abs(rows_gz - 400_000) / 400_000 < 0.25  # from the start only: rougher
    assert abs(text_gz - text) / text < 0.25
    assert estimate_rows(log_csv, sample=1 << 25)[0] == 400_001  # read whole: exact (+ header)


def test_too_large_for_memory_stops_before_parsing(log_csv, monkeypatch):
    from softbpr.split import load_split

    monkeypatch.setenv("SOFTBPR_MAX_MEMORY", "10M")  # a 10 MB machine
    t = time.perf_counter()
    with pytest.raises(NotEnoughMemory, match=r"log.csv: loading about 4\d\d,\d{3} rows \(\d MB of "
                                        r"text\) needs about .* of memory, more than the 10 MB "
                                        r"of SOFTBPR_MAX_MEMORY"):
        load_split(_cfg(log_csv), log=lambda s: None)
    assert time.perf_counter() - t < 2  # early: not after parsing
    monkeypatch.setenv("SOFTBPR_MAX_MEMORY", "64G")
    lines = []
    check_load(log_csv, lines.append)
    assert lines == []  # far below the budget: silent


def test_cli_one_line(log_csv, tmp_path):
    p = subprocess.run([sys.executable, "-m", "softbpr", "train", "--data", str(log_csv),
                        "--out", str(tmp_path / "r")], capture_output=True, text=True,
                       timeout=120, check=False,
                       env={**__import__("os").environ, "SOFTBPR_MAX_MEMORY": "20M"})
    assert p.returncode == 6  # the environment (cli's EXIT_CODES), as a real out-of-memory
    assert p.stderr.startswith("softbpr: error: ") and len(p.stderr.splitlines()) == 1
    assert "needs about" in p.stderr and "log.csv" in p.stderr


def test_training_estimate_and_check(monkeypatch):
    n = train_need(100_000_000, 80_000_000, 2_000_000, 1_000_000, 64)
    assert 15e9 < n.total < 20e9  # 100M rows, d = 64: about 17.6 GB (docs/large-data.md)
    half = train_need(100_000_000, 80_000_000, 2_000_000, 1_000_000, 32)
    assert half.total < n.total - 5e9
    ngcf = train_need(1000, 800, 100, 100, 64, model="ngcf")
    assert ngcf.parts["model + optimiser + step"] == 4 * train_need(
        1000, 800, 100, 100, 64).parts["model + optimiser + step"]
    from conftest import block_split

    split = block_split()
    monkeypatch.setenv("SOFTBPR_MAX_MEMORY", "1K")
    with pytest.raises(NotEnoughMemory, match=r"training lightgcn \(d = 64\) on 30 users \+ items .* "
                                        r"a smaller --dim"):
        check_train(split, 64)
    monkeypatch.setenv("SOFTBPR_MAX_MEMORY", "8G")
    assert check_train(split, 64).total < 1e9


def test_ids_beyond_int32_and_int64(tmp_path):
    """Raw ids above 2^31 (and 20-digit ids, beyond int64) load: they are only external ids."""
    from softbpr.split import load_split

    rng = np.random.default_rng(0)
    big_u = (1 << 40) + rng.choice(10**6, size=60, replace=False)
    items = [f"{10**19 + k}" for k in range(30)]  # > 2^63: kept as strings
    lines = ["user,item,timestamp"]
    for u in big_u:
        for j, it in enumerate(rng.choice(items, size=6, replace=False)):
            lines.append(f"{u},{it},{1000 + j}")
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    split = load_split(_cfg(tmp_path / "big.csv"), log=lambda s: None)
    assert split.n_users == 60 and split.n_items == 30
    assert split.user_map.ids.dtype == np.int64 and split.user_map.ids.min() >= 1 << 40
    assert split.item_map.ids.dtype.kind == "U" and split.item_map.ids[0].startswith("1000")
    assert split.train.users.max() < 60  # internal indices are dense


def test_catalogue_beyond_the_bitmap_uses_sorted_keys():
    """U x I > 2^31: no train-pair bitmap; membership tests use the sorted keys and agree."""
    from softbpr.graph import BITMAP_MAX_BITS, InteractionGraph
    from softbpr.split import Pairs

    n_users, n_items = 70_000, 40_000  # 2.8e9 pairs > 2^31
    assert n_users * n_items > BITMAP_MAX_BITS
    rng = np.random.default_rng(0)
    u = rng.integers(0, n_users, 5000)
    i = rng.integers(0, n_items, 5000)
    g = InteractionGraph.from_pairs(Pairs(u, i), n_users, n_items)
    assert g.pos_bits is None
    qu = torch.from_numpy(np.concatenate([u[:100], rng.integers(0, n_users, 100)]))
    qi = torch.from_numpy(np.concatenate([i[:100], rng.integers(0, n_items, 100)]))
    got = g.is_positive(qu, qi).numpy()
    keys = set((u * n_items + i).tolist())
    want = np.array([int(a) * n_items + int(b) in keys for a, b in zip(qu, qi)])
    assert np.array_equal(got, want) and got[:100].all()


def test_lightgcn_format_is_checked_too(tmp_path, monkeypatch):
    """LightGCN files ('user item item ...') count (user, item) pairs, not lines: a folder's
    train/valid/test files together, and stop before parsing when they cannot fit."""
    from softbpr.split import load_split

    rng = np.random.default_rng(0)
    lines = [" ".join(map(str, [u, *rng.choice(5000, size=rng.integers(1, 60), replace=False)]))
             for u in range(20_000)]
    pairs = sum(len(x.split()) - 1 for x in lines)
    (tmp_path / "train.txt").write_text("\n".join(lines[:15_000]) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(lines[15_000:]) + "\n")
    (tmp_path / "user_list.txt").write_text("org_id remap_id\n" * 50_000)  # not pairs: ignored
    rows = check_load(tmp_path, lightgcn=True)
    assert abs(rows - pairs) < 0.02 * pairs
    assert estimate_rows(tmp_path / "test.txt", lightgcn=True)[0] == sum(
        len(x.split()) - 1 for x in lines[15_000:])  # a small file is counted exactly
    monkeypatch.setenv("SOFTBPR_MAX_MEMORY", "10M")
    with pytest.raises(NotEnoughMemory, match=r"loading about .* rows"):
        load_split(_cfg(tmp_path), log=lambda s: None)
