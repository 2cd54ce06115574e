"""Approximate top-K (softbpr.ann, Faiss): seen items excluded exactly, the exact answer with the
flat index, high recall with ivf/hnsw, complete lists for users with long histories."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

pytest.importorskip("faiss", reason="the ann extra (faiss-cpu) is not installed")

from softbpr.ann import build_index, topk_unseen
from softbpr.data import IdMap
from softbpr.recommend import Recommender
from softbpr.split import Pairs, Split


def _clustered(n_users=300, n_items=3000, d=16, seed=0):
    """Vectors around 20 cluster centres (as trained embeddings are), plus seen sets."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((20, d)) * 2
    uv = (c[rng.integers(20, size=n_users)] + rng.standard_normal((n_users, d))).astype(
        np.float32)
    iv = (c[rng.integers(20, size=n_items)] + rng.standard_normal((n_items, d))).astype(
        np.float32)
    n_seen = rng.integers(1, 40, size=n_users)
    n_seen[0] = n_items - 3  # a user who has seen all but 3 items
    n_seen[1] = 400  # a long history
    rows = np.repeat(np.arange(n_users), n_seen)
    cols = np.concatenate([rng.choice(n_items, size=s, replace=False) for s in n_seen])
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (n_users, n_items))
    seen.sort_indices()
    return uv, iv, seen


def _exact(uv, iv, seen, users, k):
    sc = uv[users] @ iv.T
    sc[seen[users].toarray() > 0] = -np.inf
    top = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sc, top, 1), top


def _run(index, uv, seen, users, k):
    return topk_unseen(index, uv[users], seen.indptr.astype(np.int64),
                       seen.indices.astype(np.int64), users, k)


def test_flat_index_is_exact_and_excludes_seen():
    uv, iv, seen = _clustered()
    users = np.arange(len(uv))
    s, it = _run(build_index(iv, "flat"), uv, seen, users, 10)
    es, ei = _exact(uv, iv, seen, users, 10)
    np.testing.assert_allclose(s, es, rtol=1e-5, atol=1e-5)
    fin = np.isfinite(es)
    assert (it[fin] == ei[fin]).mean() > 0.999  # (ties may swap)
    assert fin[0].sum() == 3 and not np.isfinite(s[0, 3:]).any()  # only 3 unseen items exist


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_recall_and_no_seen_items(kind):
    uv, iv, seen = _clustered()
    users = np.arange(len(uv))
    index = build_index(iv, kind)
    s, it = _run(index, uv, seen, users, 20)
    _, ei = _exact(uv, iv, seen, users, 20)
    for u in users:
        got = it[u][np.isfinite(s[u])]
        assert len(got) == min(20, iv.shape[0] - seen[u].nnz)  # complete lists, long histories too
        assert len(set(got)) == len(got)
        assert not np.isin(got, seen[u].indices).any()  # never a seen item
        np.testing.assert_allclose(s[u][np.isfinite(s[u])], uv[u] @ iv[got].T, rtol=1e-4,
                                   atol=1e-4)  # exact scores of the returned items
        assert np.all(np.diff(s[u][np.isfinite(s[u])]) <= 1e-6)  # best first
    recall = np.mean([len(np.intersect1d(it[u], ei[u])) / 20 for u in users[2:]])
    assert recall > 0.9, recall


def test_users_the_index_cannot_serve_are_scored_exactly():
    """ivf with nprobe 1 sees one cell: a user with a long history finds too few unseen items
    there, is asked again with more, and is finally scored exactly: still a complete list."""
    uv, iv, seen = _clustered()
    index = build_index(iv, "ivf", nlist=40, nprobe=1)
    users = np.array([0, 1, 2])
    s, it = _run(index, uv, seen, users, 50)
    _, ei = _exact(uv, iv, seen, users, 50)
    assert np.isfinite(s[0]).sum() == 3 and set(it[0][:3]) == set(ei[0][:3])
    assert np.isfinite(s[1]).all() and not np.isin(it[1], seen[1].indices).any()


def test_recommender_use_index(tmp_path):
    uv, iv, seen = _clustered(n_users=50, n_items=500)
    coo = seen.tocoo()
    split = Split("x", Pairs(coo.row.astype(np.int64), coo.col.astype(np.int64)),
                  Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64)),
                  Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64)),
                  IdMap(np.arange(50, dtype=np.int64) + 1000), IdMap(np.arange(500) + 7))
    rec = Recommender(torch.from_numpy(uv), torch.from_numpy(iv), split)
    exact = rec.recommend([1000, 1003], k=5)
    assert rec.use_index("flat").kind == "flat"
    approx = rec.recommend([1000, 1003], k=5)
    for a, b in zip(exact, approx):
        assert a.user == b.user and list(a.items) == list(b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    rec.use_index("ivf")
    assert [len(r.items) for r in rec.recommend([1000, 1003], k=5)] == [3, 5]
    assert rec.use_index(None) is None and rec.index is None


def test_cli_ann_matches_exact_on_a_small_catalogue(tmp_path, capsys):
    """`softbpr recommend --ann flat` lists what the exact path lists (the flat index is exact);
    --ann ivf lists the same number of unseen items."""
    from test_recommend import train_args, write_csv

    from softbpr.cli import main

    run = tmp_path / "run"
    assert main(train_args(write_csv(tmp_path / "d.csv"), run)) == 0
    capsys.readouterr()
    base = ["recommend", str(run), "--user", "u_a", "--user", "u_b", "--k", "5", "--format",
            "json", "--device", "cpu"]
    assert main(base) == 0
    exact = capsys.readouterr().out
    assert main([*base, "--ann", "flat"]) == 0
    assert capsys.readouterr().out == exact
    assert main([*base, "--ann"]) == 0
    approx = capsys.readouterr().out
    assert [len(r["items"]) for r in json.loads(approx)] == [5, 5]


def test_ivf_keeps_its_recall_when_norms_differ_widely():
    """Popular items get large norms (SVD or trained embeddings), users small ones: the
    IP -> L2 reduction must not lose the ranking to float32 rounding (it did, unscaled:
    Faiss computes |q|² + |x|² - 2<q, x>)."""
    uv, iv, seen = _clustered(n_users=200, n_items=4000, d=16)
    rng = np.random.default_rng(1)
    iv = iv * (10 ** rng.uniform(0, 3, size=(len(iv), 1))).astype(np.float32)  # norms up to ~1e4
    uv = uv * np.float32(1e-3)
    users = np.arange(2, 200)
    _, it = _run(build_index(iv, "ivf"), uv, seen, users, 20)
    _, ei = _exact(uv, iv, seen, users, 20)
    recall = np.mean([len(np.intersect1d(it[r], ei[r])) / 20 for r in range(len(users))])
    assert recall > 0.95, recall
