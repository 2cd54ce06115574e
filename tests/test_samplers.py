"""Samplers never return a training positive; DNS picks the arg-max candidate."""

import numpy as np
import pytest
import torch

from softbpr.graph import InteractionGraph
from softbpr.models import LightGCN
from softbpr.samplers import DynamicHardSampler, UniformSampler, nth_free_item, uniform_candidates
from softbpr.split import Pairs


def dense_graph():
    """7 users x 11 items; user 0 has every item but one (item 5), others random ~50%."""
    rng = np.random.default_rng(3)
    rows = [(0, i) for i in range(11) if i != 5]
    for u in range(1, 7):
        rows += [(u, i) for i in range(11) if rng.random() < 0.5]
    p = Pairs(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))
    return InteractionGraph.from_pairs(p, 7, 11), p


@pytest.mark.parametrize("sampler", [UniformSampler(), DynamicHardSampler(1),
                                     DynamicHardSampler(4), DynamicHardSampler(64)])
def test_never_returns_a_train_positive(sampler, gen):
    g, p = dense_graph()
    model = LightGCN(7, 11, dim=8, layers=2, generator=torch.Generator().manual_seed(1))
    emb = model.propagate(g)
    known = set(zip(p.users.tolist(), p.items.tolist()))
    users = torch.arange(7).repeat(300)
    neg = sampler.sample(users, None, emb, g, gen)
    assert neg.items.shape == users.shape and neg.emb.shape == (len(users), 8)
    for u, j in zip(users.tolist(), neg.items.tolist()):
        assert (u, j) not in known
    assert set(neg.items[users == 0].tolist()) == {5}  # the only free item of user 0


def test_nth_free_item_enumerates_each_users_complement_in_order():
    """Ranks 0..n_free-1 map one to one onto the user's non-train items, in item order, for
    users with no, few, most and all-but-one items (incl. positives at both ends)."""
    rng = np.random.default_rng(3)
    n_items, rows = 23, [[], [0], [22], [0, 1, 2, 22], list(range(1, 23)), list(range(22))]
    rows += [sorted(rng.choice(n_items, size=k, replace=False).tolist()) for k in (5, 11, 17)]
    us = np.concatenate([[u] * len(r) for u, r in enumerate(rows)]).astype(np.int64)
    it = np.concatenate([r for r in rows]).astype(np.int64)
    g = InteractionGraph.from_pairs(Pairs(us, it), len(rows), n_items)
    for u, pos in enumerate(rows):
        free = [i for i in range(n_items) if i not in pos]
        r = torch.arange(len(free))
        got = nth_free_item(g, torch.full_like(r, u), r)
        assert got.tolist() == free, u


def test_rejection_falls_back_to_rank_draws_for_dense_users(gen):
    g, p = dense_graph()
    users = torch.zeros(50, dtype=torch.long)
    cand = uniform_candidates(g, users, 3, gen, method="reject", max_rounds=0)
    assert torch.all(cand == 5)


@pytest.mark.parametrize("method", ["reject", "rank"])
def test_uniform_candidates_cover_the_complement(gen, method):
    g, p = dense_graph()
    users = torch.full((4000,), 2, dtype=torch.long)
    got = uniform_candidates(g, users, 1, gen, method=method)[:, 0]
    free = set(range(11)) - set(p.items[p.users == 2].tolist())
    counts = np.bincount(got.numpy(), minlength=11)
    assert set(np.flatnonzero(counts)) == free
    assert counts[list(free)].min() > 0.5 * 4000 / len(free)  # roughly uniform


def test_dns_picks_argmax_and_gradient_flows_through_chosen_item(blocks):
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items)
    model = LightGCN(blocks.n_users, blocks.n_items, dim=8, layers=2,
                     generator=torch.Generator().manual_seed(0))
    emb = model.propagate(g)
    users = torch.arange(blocks.n_users).repeat(5)
    H = 6
    gen_a = torch.Generator().manual_seed(42)
    gen_b = torch.Generator().manual_seed(42)
    neg = DynamicHardSampler(H).sample(users, None, emb, g, gen_a)
    cand = uniform_candidates(g, users, H, gen_b)  # the same draws
    scores = (emb.user[users].unsqueeze(1) * emb.item[cand]).sum(-1)
    expect = cand.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)
    assert torch.equal(neg.items, expect)
    torch.testing.assert_close(neg.emb, emb.item[expect])
    assert neg.emb.requires_grad
    neg.emb.sum().backward()
    assert model.item_emb.grad is not None and model.item_emb.grad.abs().sum() > 0


def test_pool_size_validation():
    with pytest.raises(ValueError, match="pool_size"):
        DynamicHardSampler(0)
