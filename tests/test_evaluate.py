"""Recall@K / NDCG@K against hand-computed values on a tiny asymmetric example."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from softbpr.evaluate import rank_metrics


def csr(rows, n_users, n_items):
    r = [u for u, items in rows.items() for _ in items]
    c = [i for items in rows.values() for i in items]
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_users, n_items))
    m.sort_indices()
    return m


def example():
    """3 users x 5 items; scores are given directly (user vectors one-hot, items = score rows)."""
    # score[u, i]; user 0 ranks items 0>1>2>3>4, user 1 ranks 4>3>2>1>0, user 2 ranks 2>0>4>1>3
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0],
                           [1.0, 2.0, 3.0, 4.0, 5.0],
                           [4.0, 2.0, 5.0, 1.0, 3.0]], dtype=torch.float64)
    user_vecs = torch.eye(3, dtype=torch.float64)
    item_vecs = scores.T.contiguous()  # [5 items, 3] so user_vecs @ item_vecs.T = scores
    return user_vecs, item_vecs


def test_hand_computed_recall_ndcg():
    u, it = example()
    # user 0: item 0 masked (train) -> ranking 1,2,3,4; truth {2, 4}
    # user 1: nothing masked -> ranking 4,3,2,1,0; truth {3}
    # user 2: no held-out items -> skipped
    truth = csr({0: [2, 4], 1: [3]}, 3, 5)
    mask = csr({0: [0]}, 3, 5)
    m = rank_metrics(u, it, truth, mask, ks=(1, 2, 3))
    d = lambda r: 1 / math.log2(r + 1)
    # user 0: hits at ranks 2 (item 2) and 4 (item 4); user 1: hit at rank 2 (item 3)
    assert m["users"] == 2
    assert m["recall@1"] == pytest.approx((0 + 0) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert m["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["ndcg@1"] == pytest.approx(0.0)
    n0_2 = d(2) / (d(1) + d(2))  # IDCG over min(2, |T|=2) positions
    n1_2 = d(2) / d(1)  # IDCG over min(2, |T|=1) = 1 position
    assert m["ndcg@2"] == pytest.approx((n0_2 + n1_2) / 2)
    assert m["ndcg@3"] == pytest.approx((n0_2 + n1_2) / 2)


def test_masked_item_is_never_a_hit_and_k_beyond_catalogue():
    u, it = example()
    # user 0's only held-out item is also masked: it must not count even with K = 5
    truth = csr({0: [0]}, 3, 5)
    mask = csr({0: [0, 1, 2, 3, 4]}, 3, 5)
    m = rank_metrics(u, it, truth, mask, ks=(5, 10))
    assert m["recall@5"] == 0.0 and m["ndcg@10"] == 0.0


def test_batching_does_not_change_results():
    rng = np.random.default_rng(0)
    U, I = 37, 23
    uv, iv = torch.randn(U, 4, dtype=torch.float64), torch.randn(I, 4, dtype=torch.float64)
    truth = sp.random(U, I, density=0.1, format="csr", random_state=1)
    truth.data[:] = 1
    mask = sp.random(U, I, density=0.2, format="csr", random_state=2)
    mask.data[:] = 1
    mask = (mask - mask.multiply(truth)).tocsr()
    mask.eliminate_zeros()
    mask.sort_indices()
    a = rank_metrics(uv, iv, truth, mask, ks=(5, 10), batch_users=3)
    b = rank_metrics(uv, iv, truth, mask, ks=(5, 10), batch_users=1000)
    assert a == pytest.approx(b)
    # brute force reference
    scores = (uv @ iv.T).numpy()
    scores[mask.toarray() > 0] = -np.inf
    rec, n = 0.0, 0
    for user in range(U):
        t = set(truth[user].indices)
        if not t:
            continue
        top = np.argsort(-scores[user], kind="stable")[:10]
        rec += len(t & set(top)) / len(t)
        n += 1
    assert a["recall@10"] == pytest.approx(rec / n)
    assert a["users"] == n
    _ = rng


@pytest.mark.parametrize("n_items", [50, 700, 1000, 1031, 5000])
def test_chunked_topk_is_exact(n_items):
    from softbpr.evaluate import chunked_topk

    g = torch.Generator().manual_seed(n_items)
    s = torch.randn(23, n_items, generator=g)
    s[:, ::5] = float("-inf")  # masked items
    s[3, :] = float("-inf")  # a fully masked row
    s[3, 7] = 1.0
    k = 10
    a, b = torch.topk(s, k, dim=1), chunked_topk(s, k, chunk=16)
    torch.testing.assert_close(a.values, b.values)
    finite = torch.isfinite(a.values)
    assert torch.equal(a.indices[finite], b.indices[finite])
    assert torch.equal(s.gather(1, b.indices), b.values)


def test_cosine_ranking_by_hand():
    """rank_by = cosine ranks by the angle, not the length: item 0 is long and off-angle, item 1
    short and aligned with the user. Dot ranks 0 first, cosine 1 first."""
    from softbpr.evaluate import ranking_vectors
    u = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    it = torch.tensor([[10.0, 10.0], [1.0, 0.1], [0.0, 0.0]], dtype=torch.float64)
    truth, mask = csr({0: [1]}, 1, 3), csr({}, 1, 3)
    assert rank_metrics(u, it, truth, mask, ks=(1,))["recall@1"] == 0.0
    uc, ic = ranking_vectors(u, it, "cosine")
    assert rank_metrics(uc, ic, truth, mask, ks=(1,))["recall@1"] == 1.0
    torch.testing.assert_close(ic[0], torch.tensor([0.5 ** 0.5] * 2, dtype=torch.float64))
    assert torch.equal(ic[2], torch.zeros(2, dtype=torch.float64))  # a zero row stays zero
    assert ranking_vectors(u, it, "dot")[1] is it
    with pytest.raises(ValueError, match="dot or cosine"):
        ranking_vectors(u, it, "angle")
