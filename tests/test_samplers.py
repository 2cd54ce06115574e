"""Samplers: the contract over SAMPLERS (lifecycle, shapes, never a known positive), uniform
candidates, DNS's arg-max and MixGCF against the literal reference code."""

import copy
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import softbpr.trainer
from softbpr.config import SamplerConfig, load
from softbpr.graph import InteractionGraph
from softbpr.models import MODELS, LightGCN, build_model
from softbpr.samplers import (
    SAMPLERS,
    DynamicHardSampler,
    MixGCFSampler,
    Sampler,
    build_sampler,
    nth_free_item,
    uniform_candidates,
)
from softbpr.split import Pairs
from softbpr.trainer import fit

ROOT = Path(__file__).resolve().parents[1]


def graph_of(split):
    return InteractionGraph.from_pairs(split.train, split.n_users, split.n_items)


def dense_graph():
    """7 users x 11 items; user 0 has every item but one (item 5), others random ~50%."""
    rng = np.random.default_rng(3)
    rows = [(0, i) for i in range(11) if i != 5]
    for u in range(1, 7):
        rows += [(u, i) for i in range(11) if rng.random() < 0.5]
    p = Pairs(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))
    return InteractionGraph.from_pairs(p, 7, 11), p


def small(name: str, **over) -> SamplerConfig:
    """A sampler config that keeps every sampler fast (small generator, H = 4)."""
    return SamplerConfig(**{"name": name, "pool_size": 4, "gen_dim": 4,
                            "gen_pretrain_epochs": 1, **over})


# ---------------------------------------------------------------------- contract over SAMPLERS

def test_registry_names_and_classes_agree():
    for name, cls in SAMPLERS.items():
        assert issubclass(cls, Sampler) and cls.name == name
        assert type(build_sampler(small(name))) is cls


def same(a, b) -> bool:
    """Nested dicts/lists/tensors equal (a state_dict round trip)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check_lifecycle(build, blocks, model_name):
    """The trainer's lifecycle, hooks called unconditionally: setup, on_epoch_start, sample,
    stats (reset on read), state_dict -> load_state_dict into a fresh sampler."""
    g = graph_of(blocks)
    model = build_model(model_name, blocks.n_users, blocks.n_items, 8, 2, "xavier",
                        torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    sampler = build()
    sampler.setup(model, g, blocks, torch.device("cpu"), gen)
    users = torch.arange(blocks.n_users).repeat(3)
    pos = torch.from_numpy(blocks.train.items[np.searchsorted(blocks.train.users,
                                                              users.numpy())])
    for epoch in (1, 2):
        sampler.on_epoch_start(epoch, max_batches=0)
        emb = model.propagate(g)
        neg = sampler.sample(users, pos, emb, g, gen)
        assert neg.emb.shape == (len(users), model.out_dim) and neg.emb.requires_grad
        if neg.items is not None:
            assert neg.items.shape == users.shape
            assert not g.is_positive(users, neg.items).any()
        else:  # synthetic negatives carry their own layer-0 rows for the L2 penalty
            assert neg.ego.shape == (len(users), 8)
        st = sampler.stats()
        assert "neg_score" in st and all(isinstance(v, float) and np.isfinite(v)
                                         for v in st.values())
        assert "neg_score" not in sampler.stats()  # reset on read
    state = copy.deepcopy(sampler.state_dict())
    again = build()
    again.setup(model, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(1))
    again.load_state_dict(state)
    assert same(again.state_dict(), state)


def check_no_known_positive(build):
    """On a dense graph (user 0 owns every item but item 5), over 3 epochs of 7 x 60 pairs:
    every real negative is a non-train item, and user 0 always gets item 5."""
    g, p = dense_graph()
    model = LightGCN(7, 11, dim=8, layers=2, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    sampler = build()
    sampler.setup(model, g, None, torch.device("cpu"), gen)
    known = set(zip(p.users.tolist(), p.items.tolist()))
    users = torch.arange(7).repeat(60)
    pos = torch.from_numpy(p.items[np.searchsorted(p.users, users.numpy())])
    for epoch in (1, 2, 3):
        sampler.on_epoch_start(epoch)
        neg = sampler.sample(users, pos, model.propagate(g), g, gen)
        if neg.items is None:
            pytest.skip("synthetic negatives have no item ids; test_mixgcf_negative_is_on_the_"
                        "positive_candidate_segments checks the candidates they mix")
        assert not {(u, j) for u, j in zip(users.tolist(), neg.items.tolist())} & known
        assert set(neg.items[users == 0].tolist()) == {5}


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_on_every_model(blocks, name, model_name):
    check_lifecycle(lambda: build_sampler(small(name)), blocks, model_name)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_no_sampler_returns_a_known_positive(name):
    check_no_known_positive(lambda: build_sampler(small(name, pool_size=8)))


def test_docs_example_sampler(blocks, monkeypatch):
    """docs/extending.md's example sampler, run as written: it registers with one line, passes
    the contract above, picks the most popular candidate, and trains under fit()."""
    text = (ROOT / "docs" / "extending.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)[0]
    mod = types.ModuleType("softbpr.samplers.popular")
    mod.__package__ = "softbpr.samplers"
    exec(compile(code, "docs/extending.md", "exec"), mod.__dict__)
    monkeypatch.setitem(SAMPLERS, "popular", mod.PopularSampler)  # the registry line
    # a [sampler] section naming it (SamplerConfig checks names against config.SAMPLER_NAMES)
    cfg = types.SimpleNamespace(name="popular", pool_size=4)

    def build():
        return build_sampler(cfg)

    for model_name in sorted(MODELS):
        check_lifecycle(build, blocks, model_name)
    check_no_known_positive(build)
    # its rule: the most popular of the candidates (replayed from the same random stream)
    g = graph_of(blocks)
    s = build()
    s.setup(None, g, blocks, torch.device("cpu"), None)
    model = LightGCN(blocks.n_users, blocks.n_items, 4, 1)
    users = torch.arange(blocks.n_users).repeat(5)
    neg = s.sample(users, None, model.propagate(g), g, torch.Generator().manual_seed(3))
    cand = uniform_candidates(g, users, 4, torch.Generator().manual_seed(3))
    pop = torch.from_numpy(np.bincount(blocks.train.items, minlength=blocks.n_items))
    assert torch.equal(pop[neg.items], pop[cand].max(1).values)
    # and it trains: fit() with the example in place of the configured sampler
    monkeypatch.setattr(softbpr.trainer, "build_sampler", mod.PopularSampler.from_config)
    exp = load(overrides={"preset": "dns", "pool_size": 4, "dim": 8, "epochs": 2,
                          "batch_size": 16, "device": "cpu", "topk": "5", "metric": "recall@5"})
    run = fit(exp, split=blocks, log=lambda m: None, progress=False)
    assert [r["neg_popularity"] > 0 for r in run.history] == [True, True]


# ----------------------------------------------------------------------- uniform candidates

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
    g, _ = dense_graph()
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


# -------------------------------------------------------------------------------------- DNS

def test_dns_picks_argmax_and_gradient_flows_through_chosen_item(blocks):
    g = graph_of(blocks)
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


# ----------------------------------------------------------------------------------- MixGCF

def reference_mixgcf(emb, users, pos, cand, alpha, per_layer_user):
    """MixGCF's `negative_sampling`, literally: all candidates mixed, then the per-layer max."""
    s_e = torch.stack([lay[users] for lay in emb.user_layers], 1)  # [B, L+1, d]
    if not per_layer_user:
        s_e = emb.user[users].unsqueeze(1)  # pooled user, broadcast over layers
    p_e = torch.stack([lay[pos] for lay in emb.item_layers], 1)  # [B, L+1, d]
    n_e = torch.stack([lay[cand] for lay in emb.item_layers], 2)  # [B, H, L+1, d]
    seed = alpha[:, None, :, None]  # [B, 1, L+1, 1]
    n_e_ = seed * p_e.unsqueeze(1) + (1 - seed) * n_e
    scores = (s_e.unsqueeze(1) * n_e_).sum(-1)  # [B, H, L+1]
    idx = scores.argmax(1)  # [B, L+1]
    B, L1 = idx.shape
    return n_e_[torch.arange(B)[:, None], idx, torch.arange(L1)[None, :]], idx  # [B, L+1, d]


@pytest.mark.parametrize("model_name", ["lightgcn", "ngcf"])
def test_mixgcf_negative_is_on_the_positive_candidate_segments(blocks, model_name):
    g = graph_of(blocks)
    model = build_model(model_name, blocks.n_users, blocks.n_items, 8, 2, "xavier",
                        torch.Generator().manual_seed(1))
    emb = model.propagate(g)
    users = torch.arange(blocks.n_users).repeat(4)
    pos = torch.from_numpy(blocks.train.items[np.searchsorted(blocks.train.users,
                                                              users.numpy())])
    H = 5
    sampler = MixGCFSampler(H)
    sampler.setup(model, g, blocks, "cpu", None)
    neg = sampler.sample(users, pos, emb, g, torch.Generator().manual_seed(9))
    replay = torch.Generator().manual_seed(9)
    cand = uniform_candidates(g, users, H, replay)
    alpha = torch.rand(len(users), 3, generator=replay)
    assert neg.items is None and neg.emb.shape == (len(users), model.out_dim)
    # the candidates mixed in are non-train items (the contract for synthetic negatives)
    assert not g.is_positive(users.unsqueeze(1).expand_as(cand), cand).any()
    # per layer: e_l = α_l p_l + (1 − α_l) c_l for a candidate c_l, 0 <= α_l < 1, i.e. on the
    # segment [p_l, c_l]; and the candidate is the one the reference code picks
    ref, idx = reference_mixgcf(emb, users, pos, cand, alpha, model_name == "ngcf")
    layers = []
    for l, lay in enumerate(emb.item_layers):
        p, c = lay[pos], lay[cand.gather(1, idx[:, l:l + 1]).squeeze(1)]
        e_l = alpha[:, l:l + 1] * p + (1 - alpha[:, l:l + 1]) * c
        t = ((e_l - p) * (c - p)).sum(-1) / (c - p).pow(2).sum(-1).clamp_min(1e-12)
        assert ((t >= 0) & (t <= 1)).all()
        torch.testing.assert_close(p + t.unsqueeze(1) * (c - p), e_l)
        torch.testing.assert_close(e_l, ref[:, l])
        layers.append(e_l)
    torch.testing.assert_close(neg.emb, model.pool(layers))  # pooled like a real item
    torch.testing.assert_close(neg.ego, layers[0])  # layer-0 row for the L2 penalty
    st = sampler.stats()  # hardness: pooled scores of the synthetic negative and of candidates
    u = emb.user[users].detach()
    assert st["neg_score"] == pytest.approx(float((u * neg.emb.detach()).sum(-1).mean()), rel=1e-4)
    cand_scores = (u.unsqueeze(1) * emb.item[cand].detach()).sum(-1)
    assert st["cand_score"] == pytest.approx(float(cand_scores.mean()), rel=1e-4, abs=1e-6)
    if model_name == "lightgcn":
        assert (idx[:, 0] != idx[:, -1]).any()  # hop mixing: layers pick different candidates
    # gradient reaches the positive's and the chosen candidates' ego rows
    neg.emb.sum().backward()
    grad = model.item_emb.grad.abs().sum(1)
    assert (grad[pos.unique()] > 0).all()


def test_mixgcf_needs_setup(blocks):
    g = graph_of(blocks)
    emb = LightGCN(blocks.n_users, blocks.n_items, 4, 1).propagate(g)
    with pytest.raises(RuntimeError, match="setup"):
        MixGCFSampler(4).sample(torch.tensor([0]), torch.tensor([0]), emb, g, None)
