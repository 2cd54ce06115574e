"""Adjacency normalisation, the symmetric spmm backward, and membership tests."""

import math

import numpy as np
import pytest
import torch

from softbpr import graph as graph_mod
from softbpr.graph import InteractionGraph, normalized_adjacency, spmm, sym_spmm
from softbpr.models import Embeddings, build_model, candidate_scores
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spmm_equals_dense_product(blocks, dtype):
    """The CPU kernel (embedding bags over the CSR rows) is the sparse x dense product, empty
    rows included (item 17 of the blocks has no train pair); a COO matrix takes the fallback."""
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    adj = g.adj.to(dtype)
    dense = adj.to_dense()
    assert (dense.sum(1) == 0).any()
    x = torch.randn(dense.shape[0], 5, dtype=dtype)
    add = torch.randn_like(x)
    torch.testing.assert_close(spmm(adj, x), dense @ x)
    torch.testing.assert_close(spmm(adj, x, add=add.clone()), dense @ x + add)
    torch.testing.assert_close(spmm(adj.to_sparse_coo(), x), dense @ x)
    torch.testing.assert_close(spmm(adj, x[:, :0]), x[:, :0])  # zero columns


@pytest.mark.parametrize("n_layers", [1, 3])
def test_sparse_row_gradients_equal_dense_reference(blocks, n_layers):
    """Embeddings.user_rows / item_rows hand the propagation sparse gradients (a row gathered
    several times, from two gathers, summed); the embedding gradients equal those of the dense
    layer-by-layer LightGCN, and the gathered values those of plain indexing."""
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    U, I = blocks.n_users, blocks.n_items
    adj64 = g.adj.to(torch.float64)
    dense = g.adj.to_dense().double()
    u1 = torch.randn(U, 3, dtype=torch.float64, requires_grad=True)
    i1 = torch.randn(I, 3, dtype=torch.float64, requires_grad=True)
    u2, i2 = (t.detach().clone().requires_grad_(True) for t in (u1, i1))
    users = torch.tensor([0, 3, 3, 7, 11])
    pos, neg = torch.tensor([1, 1, 4, 9, 17]), torch.tensor([[2, 1], [5, 5], [4, 0], [1, 3], [9, 8]])
    pu, pi, ul, il = graph_mod.mean_propagate(adj64, u1, i1, n_layers)
    emb = Embeddings(pu, pi, ul, il, sparse_rows=True)
    eu, ep, en = emb.user_rows(users), emb.item_rows(pos), emb.item_rows(neg)
    torch.testing.assert_close(en, pi[neg])
    loss = (eu * ep).sum() + (eu.unsqueeze(1) * en).pow(2).sum()
    loss.backward()
    ref = [torch.cat([u2, i2])]
    for _ in range(n_layers):
        ref.append(dense @ ref[-1])
    pooled = torch.stack(ref).mean(0)
    ru, ri = pooled[:U][users], pooled[U:]
    ((ru * ri[pos]).sum() + (ru.unsqueeze(1) * ri[neg]).pow(2).sum()).backward()
    torch.testing.assert_close(u1.grad, u2.grad)
    torch.testing.assert_close(i1.grad, i2.grad)


def test_rows_fall_back_to_indexing_for_parameter_tables(blocks):
    """MF's pooled tables are its parameters: row gathers must leave them dense gradients (the
    fused Adam step takes no sparse ones); LightGCN's gathers are sparse."""
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    idx = torch.tensor([0, 2, 2])
    for name, sparse in (("mf", False), ("lightgcn", True)):
        m = build_model(name, blocks.n_users, blocks.n_items, 4, 2, "xavier",
                        torch.Generator().manual_seed(0))
        e = m.propagate(g)
        assert e.sparse_rows == sparse
        for rows in (e.user_rows(idx), e.item_rows(idx)):  # sparse backward: embedding's
            assert ("Embedding" in rows.grad_fn.name()) == sparse, rows.grad_fn.name()
        (e.user_rows(idx).sum() + e.item_rows(idx).sum()).backward()
        assert m.user_emb.grad.layout == torch.strided
        torch.testing.assert_close(m.user_emb.grad.abs().sum(0) > 0, torch.ones(4, dtype=bool))


def test_candidate_scores_equal_dot_products():
    gen = torch.Generator().manual_seed(1)
    u, table = torch.randn(6, 5, generator=gen), torch.randn(9, 5, generator=gen)
    cand = torch.randint(9, (6, 4), generator=gen)
    cand[0] = torch.tensor([3, 3, 0, 8])  # repeats and any order
    ref = torch.einsum("bd,bhd->bh", u, table[cand])
    torch.testing.assert_close(candidate_scores(u, table, cand), ref)
    u64, t64 = u.double(), table.double()
    torch.testing.assert_close(candidate_scores(u64, t64, cand),
                               torch.einsum("bd,bhd->bh", u64, t64[cand]))
    assert candidate_scores(u, table, cand[:, :0]).shape == (6, 0)
    assert not candidate_scores(u.requires_grad_(), table, cand).requires_grad
    many = torch.randint(9, (6, 20), generator=gen)  # more candidates than items (tiny catalogues)
    torch.testing.assert_close(candidate_scores(u, table, many),
                               torch.einsum("bd,bhd->bh", u, table[many]))


def test_reordered_propagation_is_bitwise_the_same(blocks):
    """Renumbering Â for locality (graph.Reordered) changes no number: pooled outputs, layers
    (read first under no_grad, as MixGCF does, then used with gradient) and the gradients from
    sparse row gathers, dense gathers and layer outputs equal those of the plain propagation."""
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    reo = g.reordered()
    assert reo is g.reordered()  # built once
    assert not torch.equal(reo.order_u, torch.arange(blocks.n_users))  # a real renumbering
    gen = torch.Generator().manual_seed(4)
    u0 = torch.randn(blocks.n_users, 6, generator=gen)
    i0 = torch.randn(blocks.n_items, 6, generator=gen)
    users, items = torch.tensor([0, 5, 5, 11]), torch.tensor([2, 17, 9, 9])

    def run(r):
        u, i = u0.clone().requires_grad_(True), i0.clone().requires_grad_(True)
        pu, pi, ul, il = graph_mod.mean_propagate(g.adj, u, i, 3, r)
        e = Embeddings(pu, pi, ul, il, sparse_rows=True)
        with torch.no_grad():
            peek = il[2].sum()
        loss = (e.user_rows(users) * e.item_rows(items)).sum() + pi[items].pow(2).sum() \
            + (il[2][items] * ul[1][users]).sum()
        loss.backward()
        return [pu, pi, *ul, *il, peek, u.grad, i.grad]

    for a, b in zip(run(None), run(reo)):
        assert torch.equal(a, b)


def test_lightgcn_reorders_large_graphs_only(blocks, monkeypatch):
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    m = build_model("lightgcn", blocks.n_users, blocks.n_items, 4, 2, "xavier",
                    torch.Generator().manual_seed(0))
    plain = m.propagate(g)
    assert isinstance(plain.user_layers, tuple) and g._reordered is None
    monkeypatch.setattr(graph_mod, "REORDER_MIN_BYTES", 0)
    reo = m.propagate(g)
    assert isinstance(reo.user_layers, graph_mod.Layers) and g._reordered is not None
    assert torch.equal(plain.user, reo.user) and torch.equal(plain.item_layers[2],
                                                             reo.item_layers[2])


@pytest.mark.parametrize("reorder", [False, True])
def test_ego_rows_gradient_goes_through_the_propagation(blocks, monkeypatch, reorder):
    """The L2 penalty on Embeddings.ego_user_rows / ego_item_rows: the same values as the
    model's layer-0 rows and the same parameter gradients as the penalty on the parameters, but
    added inside the propagation's backward (the rows' gradient is sparse)."""
    if reorder:
        monkeypatch.setattr(graph_mod, "REORDER_MIN_BYTES", 0)
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    users, pos, neg = torch.tensor([1, 1, 6]), torch.tensor([0, 4, 4]), torch.tensor([3, 17, 0])
    grads = []
    for ego in (True, False):
        m = build_model("lightgcn", blocks.n_users, blocks.n_items, 4, 2, "xavier",
                        torch.Generator().manual_seed(2))
        e = m.propagate(g)
        if ego:
            rows = (e.ego_user_rows(users), e.ego_item_rows(pos), e.ego_item_rows(neg))
            assert "Embedding" in rows[0].grad_fn.name()
            assert e.user_layers[0].grad_fn is not None  # an output of the propagation
            torch.testing.assert_close(rows[0], m.layer0_users(users))
        else:
            rows = (m.layer0_users(users), m.layer0_items(pos), m.layer0_items(neg))
        loss = (e.user_rows(users) * e.item_rows(pos)).sum() + sum(r.pow(2).sum() for r in rows)
        loss.backward()
        grads.append((m.user_emb.grad, m.item_emb.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
