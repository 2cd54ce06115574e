"""Adjacency normalisation, the symmetric spmm backward, and membership tests."""

import math

import numpy as np
import pytest
import torch

from softbpr import graph as graph_mod
from softbpr.graph import InteractionGraph, normalized_adjacency, sym_spmm
from softbpr.split import Pairs


def tiny_pairs():
    # 2 users x 3 items: u0-{i0, i1}, u1-{i1}; item 2 has no interaction
    return Pairs(np.array([0, 0, 1]), np.array([0, 1, 1]))


def test_normalised_values_by_hand():
    R = tiny_pairs().csr(2, 3)
    A = normalized_adjacency(R).toarray()
    # nodes: u0 (deg 2), u1 (deg 1), i0 (deg 1), i1 (deg 2), i2 (deg 0)
    expect = np.zeros((5, 5))
    expect[0, 2] = expect[2, 0] = 1 / math.sqrt(2 * 1)
    expect[0, 3] = expect[3, 0] = 1 / math.sqrt(2 * 2)
    expect[1, 3] = expect[3, 1] = 1 / math.sqrt(1 * 2)
    np.testing.assert_allclose(A, expect, rtol=1e-6)
    assert np.allclose(A, A.T)
    assert np.all(np.diag(A) == 0)  # no self-loops
    assert np.all(A[4] == 0)  # isolated item row is zero


def test_sym_spmm_backward_equals_dense_autograd(blocks):
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    dense = g.adj.to_dense().double()
    x1 = torch.randn(dense.shape[0], 4, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    w = torch.randn(dense.shape[0], 4, dtype=torch.float64)
    adj64 = g.adj.to(torch.float64)
    (sym_spmm(adj64, sym_spmm(adj64, x1)) * w).sum().backward()
    ((dense @ (dense @ x2)) * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_is_positive_bitmap_and_search_agree(blocks, monkeypatch):
    g1 = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    monkeypatch.setattr(graph_mod, "BITMAP_MAX_BITS", 0)
    g2 = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    assert g1.pos_bits is not None and g2.pos_bits is None
    uu, ii = torch.meshgrid(torch.arange(blocks.n_users), torch.arange(blocks.n_items),
                            indexing="ij")
    truth = torch.from_numpy(blocks.train.csr(blocks.n_users, blocks.n_items).toarray() > 0)
    assert torch.equal(g1.is_positive(uu, ii), truth)
    assert torch.equal(g2.is_positive(uu, ii), truth)


def test_user_with_every_item_is_an_error():
    p = Pairs(np.array([0, 0, 1]), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="every item"):
        InteractionGraph.from_pairs(p, 2, 2)


@pytest.mark.parametrize("layer_grads", [False, True])
def test_fused_mean_propagation_matches_autograd(blocks, layer_grads):
    """Values and gradients of the fused LightGCN pass equal the layer-by-layer dense version."""
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    U = blocks.n_users
    adj64 = g.adj.to(torch.float64)
    dense = g.adj.to_dense().double()
    u1 = torch.randn(U, 3, dtype=torch.float64, requires_grad=True)
    i1 = torch.randn(blocks.n_items, 3, dtype=torch.float64, requires_grad=True)
    u2, i2 = (t.detach().clone().requires_grad_(True) for t in (u1, i1))
    w = torch.randn(5, dense.shape[0], 3, dtype=torch.float64)
    pu, pi, ul, il = graph_mod.mean_propagate(adj64, u1, i1, 3)
    ref = [torch.cat([u2, i2])]
    for _ in range(3):
        ref.append(dense @ ref[-1])
    ref_pooled = torch.stack(ref).mean(0)
    torch.testing.assert_close(torch.cat([pu, pi]), ref_pooled)
    for a, b, r in zip(ul, il, ref):
        torch.testing.assert_close(torch.cat([a, b]), r)
    loss1 = (pu * w[0][:U]).sum() + (pi * w[0][U:]).sum()
    loss2 = (ref_pooled * w[0]).sum()
    if layer_grads:  # e.g. MixGCF scores per-layer item rows
        loss1 = loss1 + (il[2] * w[1][U:]).sum() + (ul[1] * w[2][:U]).sum()
        loss2 = loss2 + (ref[2][U:] * w[1][U:]).sum() + (ref[1][:U] * w[2][:U]).sum()
    loss1.backward()
    loss2.backward()
    torch.testing.assert_close(u1.grad, u2.grad)
    torch.testing.assert_close(i1.grad, i2.grad)
