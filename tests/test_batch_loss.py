"""The training loop's fast paths for M negatives per pair give the plain computation's values
and gradients: losses scored from the item table (`Loss.batch_loss`, `sampled_scores`, both of
its branches), rows gathered only on demand (`Negatives`), and the L2 penalty over distinct
negative rows (`trainer._negative_ego`)."""

import pytest
import torch

from softbpr.config import LossConfig
from softbpr.losses import build_loss, l2_penalty
from softbpr.models import Embeddings, sampled_scores
from softbpr.samplers.base import Negatives
from softbpr.trainer import _negative_ego


def _data(I=40, B=6, M=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(I, d, dtype=torch.float64, generator=g)
    u = torch.randn(B, d, dtype=torch.float64, generator=g)
    pos = torch.randn(B, d, dtype=torch.float64, generator=g)
    items = torch.randint(I, (B, M), generator=g)
    items[0, :3] = 7  # repeats
    return u, pos, table, items


PATHS = ["sampled", "rows", "dense"]  # a CPU's sampled product; off a CPU: rows / [B, I]


def _path(monkeypatch, path):
    """Force one of sampled_scores' paths; returns the list the sampled product appends to."""
    import softbpr.models as m

    calls = []
    real = m._sampled_dot
    monkeypatch.setattr(m, "_sampled_dot", lambda *a: calls.append(1) or real(*a))
    if path != "sampled":
        monkeypatch.setattr(m, "_sampled_dot_applies", lambda *a: False)
        monkeypatch.setattr(m, "DENSE_SCORES_RATIO", 0 if path == "rows" else 10_000)
    return calls


def test_sampled_product_refuses_ids_outside_the_table():
    u, _, table, items = _data()
    for bad in (table.shape[0], -1):
        items2 = items.clone()
        items2[1, 2] = bad
        with pytest.raises(IndexError, match="item ids must lie in"):
            sampled_scores(u, table, items2)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cosine", [False, True])
def test_sampled_scores_equal_gathered_rows(monkeypatch, path, cosine):
    calls = _path(monkeypatch, path)
    u, _, table, items = _data()
    u1, t1 = u.clone().requires_grad_(), table.clone().requires_grad_()
    u2, t2 = u.clone().requires_grad_(), table.clone().requires_grad_()
    s1 = sampled_scores(u1, t1, items, cosine)
    rows = t2[items]  # [B, M, d]
    if cosine:
        rows = torch.nn.functional.normalize(rows, dim=-1)
    s2 = torch.einsum("bd,bmd->bm", u2, rows)
    torch.testing.assert_close(s1, s2)
    w = torch.randn_like(s1)
    (s1 * w).sum().backward()
    (s2 * w).sum().backward()
    torch.testing.assert_close(u1.grad, u2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)
    assert bool(calls) == (path == "sampled")  # the path under test is the one that ran


CASES = [{"name": "sl"}, {"name": "sl", "negatives": "both"}, {"name": "bsl", "bsl_tau2": 1.3},
         {"name": "psl", "tau": 0.05}, {"name": "sl", "similarity": "dot", "soften": 0.5},
         {"name": "bsl", "soften": 0.3}, {"name": "softmax_bpr"}]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_batch_loss_equals_the_loss_on_gathered_rows(monkeypatch, path, case):
    _path(monkeypatch, path)
    loss = build_loss(LossConfig(**case))
    u, pos, table, items = _data()
    grads = []
    for fast in (True, False):
        uu, pp, tt = (x.clone().requires_grad_() for x in (u, pos, table))
        gathered = []
        neg = Negatives(items, gather=lambda i, t=tt, g=gathered: g.append(1) or t[i])
        value = loss.batch_loss(uu, pp, neg, tt) if fast else loss(uu, pp, tt[items])
        value.backward()
        if fast:
            assert not gathered  # the [B, M, d] rows were never made
        grads.append((value.detach(), uu.grad, pp.grad, tt.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert not grads[0][3].is_sparse  # (Adam on an MF table takes no sparse gradient)


def test_negatives_gather_once_on_demand():
    calls = []
    neg = Negatives(torch.tensor([[1, 2]]), gather=lambda i: calls.append(i) or i.double())
    assert not calls
    assert neg.emb.shape == (1, 2) and neg.emb.shape == (1, 2)
    assert len(calls) == 1
    with pytest.raises(ValueError):
        Negatives(None)


def test_penalty_over_distinct_negative_rows_equals_every_row():
    _, _, table, items = _data(I=9, M=12)
    t1, t2 = table.clone().requires_grad_(), table.clone().requires_grad_()
    emb = Embeddings(t1, t1, (t1,), (t1,))
    fast = l2_penalty(torch.zeros(6, 4, dtype=torch.float64), _negative_ego(
        emb, Negatives(items, gather=emb.item_rows)))
    slow = l2_penalty(torch.zeros(6, 4, dtype=torch.float64), t2[items])
    torch.testing.assert_close(fast, slow)
    fast.backward()
    slow.backward()
    torch.testing.assert_close(t1.grad, t2.grad)
