"""Shared fixtures: tiny asymmetric data (n_users != n_items) with a known right answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from softbpr.data import IdMap
from softbpr.split import Pairs, Split

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a real dataset in ../shared/data, or skip the test when it is absent."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real dataset {name!r} not found at {p} (only present beside the CI checkout)")
    return p


def block_split(n_users: int = 12, n_items: int = 18, seed: int = 0) -> Split:
    """Two taste blocks: users < n_users/2 like items < n_items/2, the others the rest.

    Each user has 6 liked items in its block: 4 in train, 1 valid, 1 test; asymmetric sizes.
    """
    rng = np.random.default_rng(seed)
    tr, va, te = [], [], []
    half_i = n_items // 2
    for u in range(n_users):
        block = np.arange(half_i) if u < n_users // 2 else np.arange(half_i, n_items)
        liked = rng.choice(block, size=6, replace=False)
        tr += [(u, i) for i in liked[:4]]
        va.append((u, liked[4]))
        te.append((u, liked[5]))
    p = lambda rows: Pairs(np.array([r[0] for r in rows], dtype=np.int64),
                           np.array([r[1] for r in rows], dtype=np.int64))
    return Split("blocks", p(tr), p(va), p(te), IdMap(np.arange(n_users, dtype=np.int64)),
                 IdMap(np.arange(n_items, dtype=np.int64)))


@pytest.fixture
def blocks() -> Split:
    return block_split()


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A LightGCN-format folder: 40 users x 30 items in two taste blocks, 8 train + 2 test each."""
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("tiny")
    train, test = [], []
    for u in range(40):
        block = np.arange(15) if u < 20 else np.arange(15, 30)
        liked = rng.choice(block, size=10, replace=False)
        train.append(" ".join(map(str, [u, *liked[:8]])))
        test.append(" ".join(map(str, [u, *liked[8:]])))
    (d / "train.txt").write_text("\n".join(train) + "\n")
    (d / "test.txt").write_text("\n".join(test) + "\n")
    return d
