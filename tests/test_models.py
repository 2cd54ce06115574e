"""Contract over every model: shapes, determinism, gradients reach the ego embeddings; LightGCN
and NGCF against their definitions computed densely by hand."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from softbpr.config import ConfigError, load
from softbpr.graph import InteractionGraph
from softbpr.models import MODELS, _Spmm, build_model


def graph_of(split):
    return InteractionGraph.from_pairs(split.train, split.n_users, split.n_items)


def ngcf(split, variant="original", **kw):
    return build_model("ngcf", split.n_users, split.n_items, 8, 2, "xavier",
                       torch.Generator().manual_seed(3), variant=variant, **kw)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract(name, blocks):
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    a = build_model(name, blocks.n_users, blocks.n_items, 8, 2, "xavier",
                    torch.Generator().manual_seed(5))
    b = build_model(name, blocks.n_users, blocks.n_items, 8, 2, "xavier",
                    torch.Generator().manual_seed(5))
    ea, eb = a.propagate(g), b.propagate(g)
    width = a.out_dim  # d, or d * (L + 1) for NGCF's concatenation
    assert ea.user.shape == (blocks.n_users, width) and ea.item.shape == (blocks.n_items, width)
    assert len(ea.user_layers) == len(ea.item_layers) == (1 if name == 'mf' else 3)
    torch.testing.assert_close(ea.user, eb.user)
    (ea.user.sum() + ea.item.sum()).backward()
    assert a.user_emb.grad.abs().sum() > 0 and a.item_emb.grad.abs().sum() > 0


def test_lightgcn_is_mean_of_layers(blocks):
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    m = build_model("lightgcn", blocks.n_users, blocks.n_items, 4, 3, "normal",
                    torch.Generator().manual_seed(0))
    e = m.propagate(g)
    A = g.adj.to_dense()
    x = torch.cat([m.user_emb, m.item_emb]).detach()
    layers = [x, A @ x, A @ A @ x, A @ A @ A @ x]
    ref = torch.stack(layers).mean(0)
    torch.testing.assert_close(torch.cat([e.user, e.item]).detach(), ref, rtol=1e-5, atol=1e-6)
    assert len(e.user_layers) == 4


# ---------------------------------------------------------------------------------------- NGCF

@pytest.mark.parametrize("variant", ["original", "mixgcf"])
def test_ngcf_matches_its_definition(blocks, variant):
    """Width d (L+1); [E0 | n(E1) | n(E2)] with each layer computed densely by hand."""
    g = graph_of(blocks)
    m = ngcf(blocks, variant).eval()
    e = m.propagate(g)
    assert e.user.shape == (blocks.n_users, 8 * 3) and e.item.shape == (blocks.n_items, 8 * 3)
    assert m.out_dim == 8 * 3
    U, R = blocks.n_users, g.train_csr.toarray()
    A = np.block([[np.zeros((U, U)), R], [R.T, np.zeros((blocks.n_items,) * 2)]])
    if variant == "original":  # the NGCF code's D^-1 (A + I)
        A = A + np.eye(len(A))
        M = A / A.sum(1, keepdims=True)
    else:  # MixGCF's symmetric D^-1/2 A D^-1/2 without self-loops
        M = g.adj.to_dense().numpy()
    M = torch.tensor(M, dtype=torch.float32)
    x = torch.cat([m.user_emb, m.item_emb]).detach()
    outs = [x]
    for k in range(2):
        side = M @ x
        a = side @ m.W1[k] + m.b1[k]
        b = (x * side) @ m.W2[k] + m.b2[k]
        x = (F.leaky_relu(a, 0.2) + F.leaky_relu(b, 0.2) if variant == "original"
             else F.leaky_relu(a + b, 0.2)).detach()
        outs.append(F.normalize(x, dim=1))
    ref = torch.cat(outs, 1)
    torch.testing.assert_close(torch.cat([e.user, e.item]).detach(), ref, rtol=1e-4, atol=1e-5)
    for layer in e.item_layers[1:]:  # stored layer outputs are L2-normalised
        torch.testing.assert_close(layer.norm(dim=1), torch.ones(blocks.n_items))
    torch.testing.assert_close(e.item_layers[0], m.item_emb)


def test_ngcf_dropout_only_in_training_and_exact_backward(blocks):
    g = graph_of(blocks)
    m = ngcf(blocks, node_dropout=0.4, mess_dropout=0.3)
    m.eval()
    a, b = m.propagate(g), m.propagate(g)
    assert torch.equal(a.user, b.user)  # no dropout at evaluation
    m.train()
    c = m.propagate(g)
    assert not torch.allclose(a.user, c.user)
    # the dropped matrix and its transpose stay consistent, so the custom backward is exact
    M, Mt = m._matrices(g)
    Md = M.to_dense()
    torch.testing.assert_close(Mt.to_dense(), Md.T)
    assert (Md == 0).sum() > (g.adj.to_dense() == 0).sum()  # some entries were dropped
    x = torch.randn(Md.shape[0], 4, requires_grad=True)
    w = torch.randn(Md.shape[0], 4)
    (_Spmm.apply(M, Mt, x) * w).sum().backward()
    torch.testing.assert_close(x.grad, Md.T @ w)


def test_ngcf_config_and_checkpoint_options():
    e = load(overrides={"model": "ngcf", "mess_dropout": 0.1, "ngcf_variant": "mixgcf"})
    assert e.model.options() == {"mess_dropout": 0.1, "node_dropout": 0.0, "variant": "mixgcf"}
    with pytest.raises(ConfigError, match="only used by model 'ngcf'"):
        load(overrides={"model": "lightgcn", "node_dropout": 0.1})
    with pytest.raises(ConfigError, match="ngcf_variant"):
        load(overrides={"model": "ngcf", "ngcf_variant": "paper"})
