"""Contract over every model: shapes, determinism, gradients reach the ego embeddings."""

import pytest
import torch

from softbpr.graph import InteractionGraph
from softbpr.models import MODELS, build_model


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
