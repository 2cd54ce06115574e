"""The paper's baselines as plug-ins: NGCF, MixGCF, IRGAN and AdvIR pin their defining behaviour."""

import copy
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import shared_data

from softbpr.cli import main
from softbpr.config import ConfigError, load
from softbpr.graph import InteractionGraph
from softbpr.losses import AdvBPR, SoftBPR, build_loss
from softbpr.models import LightGCN, _Spmm, build_model
from softbpr.samplers import SAMPLERS, MixGCFSampler, build_sampler, uniform_candidates
from softbpr.split import Pairs


def graph_of(split):
    return InteractionGraph.from_pairs(split.train, split.n_users, split.n_items)


def ngcf(split, variant="original", **kw):
    return build_model("ngcf", split.n_users, split.n_items, 8, 2, "xavier",
                       torch.Generator().manual_seed(3), variant=variant, **kw)


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


# -------------------------------------------------------------------------------------- MixGCF

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
    sampler = build_sampler("mixgcf", H)
    sampler.setup(model, g, blocks, "cpu", None)
    neg = sampler.sample(users, pos, emb, g, torch.Generator().manual_seed(9))
    replay = torch.Generator().manual_seed(9)
    cand = uniform_candidates(g, users, H, replay)
    alpha = torch.rand(len(users), 3, generator=replay)
    assert neg.items is None and neg.emb.shape == (len(users), model.out_dim)
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


# ---------------------------------------------------------------------- contract over samplers

@pytest.mark.parametrize("model_name", ["lightgcn", "ngcf"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_on_every_graph_model(blocks, name, model_name):
    g = graph_of(blocks)
    model = build_model(model_name, blocks.n_users, blocks.n_items, 8, 2, "xavier",
                        torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    opts = {"gen_dim": 4, "pretrain_epochs": 1} if name in ("irgan", "advir") else {}
    sampler = build_sampler(name, 4, **opts)
    if hasattr(sampler, "setup"):
        sampler.setup(model, g, blocks, torch.device("cpu"), gen)
    users = torch.arange(blocks.n_users).repeat(3)
    pos = torch.from_numpy(blocks.train.items[np.searchsorted(blocks.train.users,
                                                              users.numpy())])
    emb = model.propagate(g)
    neg = sampler.sample(users, pos, emb, g, gen)
    assert neg.emb.shape == (len(users), model.out_dim) and neg.emb.requires_grad
    if neg.items is not None:
        assert not g.is_positive(users, neg.items).any()
    else:
        assert neg.ego.shape == (len(users), 8)
    st = sampler.stats()
    assert "neg_score" in st and all(isinstance(v, float) and np.isfinite(v) for v in st.values())
    assert "neg_score" not in sampler.stats()  # reset on read


# -------------------------------------------------------------------------------- IRGAN, AdvIR

@pytest.mark.parametrize("name", ["irgan", "advir"])
def test_generator_learns_to_favour_what_the_discriminator_scores_high(blocks, name):
    """Against a fixed D, policy gradient moves G's mass to D's high-scored non-train items."""
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        emb = D.propagate(g)
        # rescale so that D's scores spread over a few units
        emb = type(emb)(emb.user * 6, emb.item * 6, emb.user_layers, emb.item_layers)
    gen = torch.Generator().manual_seed(0)
    s = build_sampler(name, 1, gen_dim=8, gen_lr=0.1, gen_samples=8, pretrain_epochs=0)
    s.setup(D, g, blocks, torch.device("cpu"), gen)
    users = torch.arange(blocks.n_users)
    d_scores = emb.user @ emb.item.T  # [U, I]
    free = ~torch.from_numpy(g.train_csr.toarray().astype(bool))

    def expected_d_score():  # E_{j ~ p_θ}[ŷ_uj], averaged over users
        return float((s.probabilities(users) * d_scores).sum(1).mean())

    before = expected_d_score()
    uniform = float((d_scores * free).sum(1).div(free.sum(1)).mean())
    for _ in range(50):  # G epochs against the fixed D
        s.train_generator(emb, gen)
    after = expected_d_score()
    assert abs(before - uniform) < 0.5  # G starts near uniform (no pre-training here)
    assert after > before + 2.0  # measured: about -0.7 -> +4.3 (irgan), +5.0 (advir)
    p = s.probabilities(users)
    assert (p[~free] == 0).all()  # training positives get no mass
    top = d_scores.masked_fill(~free, -1e9).argmax(1)
    bottom = d_scores.masked_fill(~free, 1e9).argmin(1)
    assert (p.gather(1, top[:, None]) > p.gather(1, bottom[:, None])).float().mean() >= 0.9
    assert {"gen_reward", "gen_loss"} <= set(s.stats())


def gan_fixture(blocks, name, **kw):
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(0)
    s = build_sampler(name, 1, **{"gen_dim": 8, "pretrain_epochs": 1, **kw})
    s.setup(D, g, blocks, torch.device("cpu"), gen)
    return g, D, gen, s


def count_calls(s) -> dict:
    """Wrap the sampler's G epoch, draw and pre-training to count their calls."""
    calls = {"gen": 0, "draw": 0, "pretrain": 0}
    for attr, key in [("train_generator", "gen"), ("_draw", "draw"), ("_pretrain", "pretrain")]:
        real = getattr(s, attr)

        def wrapped(*a, _real=real, _key=key, **k):
            calls[_key] += 1
            return _real(*a, **k)
        setattr(s, attr, wrapped)
    return calls


@pytest.mark.parametrize("name", ["irgan", "advir"])
def test_gan_schedule_one_generator_phase_and_redraw_per_epoch(blocks, name):
    """The trainer's on_epoch_start hook drives the schedule: G pre-trains once, D epoch 1 uses
    it; before every later epoch G trains gen_epochs epochs, then D's negatives are redrawn from
    softmax(g / T): |P_u| per user, each served once per epoch."""
    g, D, gen, s = gan_fixture(blocks, name, gen_epochs=2)
    emb = D.propagate(g)
    calls = count_calls(s)
    u_all, i_all = torch.from_numpy(blocks.train.users), torch.from_numpy(blocks.train.items)
    n = len(u_all)
    for epoch in range(1, 4):
        s.on_epoch_start(epoch)
        s.on_epoch_start(epoch)  # announcing the same epoch twice changes nothing
        perm = torch.randperm(n, generator=gen)
        served = []
        for b in range(0, n, 10):  # batches of 10 pairs, the last one smaller
            idx = perm[b:b + 10]
            neg = s.sample(u_all[idx], i_all[idx], emb, g, gen)
            assert not g.is_positive(u_all[idx], neg.items).any()
            served.append(torch.stack([u_all[idx], neg.items], 1))
        assert calls == {"gen": 2 * (epoch - 1), "draw": epoch, "pretrain": 1}
        # this epoch's negatives are exactly the pre-drawn cache, each slot served once
        got = sorted(map(tuple, torch.cat(served).tolist()))
        rows = torch.repeat_interleave(torch.arange(blocks.n_users), s._deg)
        assert got == sorted(map(tuple, torch.stack([rows, s._cache], 1).tolist()))
    st = s.stats()
    assert {"neg_score", "neg_prob", "gen_reward", "gen_loss", "gen_pretrain_seconds",
            "gen_phase_seconds"} <= set(st)
    s.end_epoch()  # a caller without the hook may end an epoch early: next batch, a G phase
    s.sample(u_all[:3], i_all[:3], emb, g, gen)
    assert calls == {"gen": 6, "draw": 4, "pretrain": 1} and s._epoch == 4


@pytest.mark.parametrize("world,max_batches", [(1, 2), (2, 0), (2, 2)])
def test_gan_refreshes_once_per_epoch_whatever_the_ranks_and_batch_cap(blocks, world,
                                                                       max_batches):
    """Regression: the samplers used to count served pairs to find epoch ends, so a rank that
    serves 1/world of each batch (torchrun) or a capped epoch (train.max_batches) refreshed G
    every `world` epochs or never. Now each rank refreshes G exactly once per epoch, and a
    capped epoch caps the generator's epochs too."""
    u_all, i_all = torch.from_numpy(blocks.train.users), torch.from_numpy(blocks.train.items)
    n, bs, epochs = len(u_all), 8, 4
    ranks = [gan_fixture(blocks, "irgan", gen_batch_users=2, pretrain_batch=4)
             for _ in range(world)]
    counts = [count_calls(r[3]) for r in ranks]
    steps = []
    for _, _, _, s in ranks:  # count G's optimiser steps (pre-training uses its own optimiser)
        real_step = s.opt.step
        s.opt.step = lambda *a, _r=real_step: (steps.append(1), _r(*a))[1]
    shuffle = torch.Generator().manual_seed(1)  # alike on every rank
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=shuffle)
        n_batches = -(-n // bs) if not max_batches else max_batches
        for rank, (g, D, gen, s) in enumerate(ranks):
            s.on_epoch_start(epoch, max_batches=max_batches)
            emb = D.propagate(g)
            for b in range(n_batches):
                idx = torch.tensor_split(perm[b * bs:(b + 1) * bs], world)[rank]
                neg = s.sample(u_all[idx], i_all[idx], emb, g, gen)
                assert not g.is_positive(u_all[idx], neg.items).any()
            assert s._epoch == epoch
            assert counts[rank]["gen"] == epoch - 1  # one G phase before every epoch after 1
    n_active = int((ranks[0][3]._deg > 0).sum())
    per_g_epoch = min(max_batches or n, -(-n_active // 2))  # batches of 2 users, capped
    assert len(steps) == world * (epochs - 1) * per_g_epoch
    for c in counts:
        assert c["pretrain"] == 1
        if not max_batches:
            assert c["draw"] == epochs  # every user's negatives at once, per epoch
        else:
            assert c["draw"] >= epochs  # capped: drawn per batch, for newly served users only


def test_capped_epochs_cap_pretraining_and_draw_only_served_users(blocks, monkeypatch):
    import softbpr.adversarial as adv

    g, D, gen, s = gan_fixture(blocks, "irgan", pretrain_batch=4, pretrain_epochs=3)
    steps = []  # pre-training draws DNS candidates once per step
    monkeypatch.setattr(adv, "uniform_candidates",
                        lambda *a, _real=adv.uniform_candidates: (steps.append(1), _real(*a))[1])
    s.on_epoch_start(1, max_batches=2)
    assert len(steps) == 3 * 2  # 3 pre-training epochs of 2 batches of 4 pairs
    users = torch.tensor([0, 0, 5])
    pos = torch.from_numpy(blocks.train.items[[0, 1, 20]])
    emb = D.propagate(g)
    s.sample(users, pos, emb, g, gen)
    assert s._fresh.nonzero().squeeze(1).tolist() == [0, 5]  # only the served users are drawn
    st = s.stats()
    assert st["neg_prob"] > 0 and "gen_pretrain_seconds" in st


@pytest.mark.parametrize("name", ["irgan", "advir"])
def test_gan_sampler_resumes_at_the_next_epoch(blocks, name):
    """state_dict after epoch 2, restored into a fresh sampler: no pre-training, and epoch 3
    starts with the same G phase and the same negatives as in the uninterrupted run."""
    g, D, gen, s = gan_fixture(blocks, name)
    emb = D.propagate(g)
    u_all, i_all = torch.from_numpy(blocks.train.users), torch.from_numpy(blocks.train.items)
    for epoch in (1, 2):
        s.on_epoch_start(epoch)
        s.sample(u_all, i_all, emb, g, gen)
    state, rng = copy.deepcopy(s.state_dict()), gen.get_state()  # as torch.save would
    s.on_epoch_start(3)
    ref = s.sample(u_all, i_all, emb, g, gen).items
    g2, _, gen2, s2 = gan_fixture(blocks, name)
    calls = count_calls(s2)
    s2.load_state_dict(state)
    gen2.set_state(rng)
    s2.on_epoch_start(3)
    assert torch.equal(s2.sample(u_all, i_all, emb, g2, gen2).items, ref)
    assert calls == {"gen": 1, "draw": 1, "pretrain": 0}
    torch.testing.assert_close(s2.user_g, s.user_g)


def test_generator_step_is_irgans_per_user_mean_in_any_block_size(blocks, monkeypatch):
    """One G step over a batch = −mean over users of the user's mean log p_θ(j)·r, with the
    same gradient whether the batch is scored in one block or user by user."""
    import softbpr.adversarial as adv

    monkeypatch.setattr(adv, "draw", lambda p, k, g: torch.topk(p, k, dim=1).indices)
    keep = np.ones(len(blocks.train), bool)
    keep[[0, 1]] = False  # user 0 gets 2 positives, the others 4: unequal |P_u|
    blocks = dataclasses.replace(blocks, train=Pairs(blocks.train.users[keep],
                                                     blocks.train.items[keep]))
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    emb = D.propagate(g)
    grads = []
    for chunk in (None, blocks.n_items):  # one block / one user per block
        s = build_sampler("advir", 1, gen_dim=8, pretrain_epochs=0, gen_batch_users=100,
                          max_chunk_scores=chunk)
        s.setup(D, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(0))
        s.opt.step = lambda *a: None
        s.train_generator(emb, torch.Generator().manual_seed(0))
        grads.append([p.grad.clone() for p in (s.user_g, s.item_g, s.bias_g)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    # the reference: per user, the mean over its S·|P_u| draws (its positives in turn)
    s.user_g.grad = s.item_g.grad = s.bias_g.grad = None
    d = (emb.user @ emb.item.T).detach()
    per_user = []
    for u in range(blocks.n_users):
        ut = torch.tensor([u])
        logp = torch.log_softmax(s.generator_logits(ut), -1)[0]
        deg = int(s._deg[u])
        js = torch.topk(logp.detach().exp(), 2 * deg).indices
        pos = s._col[s._crow[u] + torch.arange(2 * deg) % deg]
        r = F.logsigmoid(d[u, js] - d[u, pos])
        per_user.append(-(logp[js] * r).mean())
    torch.stack(per_user).mean().backward()
    for a, p in zip(grads[0], (s.user_g, s.item_g, s.bias_g)):
        torch.testing.assert_close(a, p.grad)


def test_advir_reward_is_pairwise_and_irgan_pointwise():
    s_j, s_i = torch.randn(2, 5), torch.randn(2, 5)  # D's scores of drawn items and positives
    adv, irg = build_sampler("advir", 1), build_sampler("irgan", 1)
    torch.testing.assert_close(adv.reward(s_j, s_i), F.logsigmoid(s_j - s_i))
    torch.testing.assert_close(irg.reward(s_j, s_i), 2 * (torch.sigmoid(s_j) - 0.5))


def test_irgan_pretraining_makes_the_generator_a_recommender(blocks):
    """G starts from a DNS-trained MF: after pre-training it scores training positives higher."""
    g = graph_of(blocks)
    s = build_sampler("irgan", 1, gen_dim=8, pretrain_epochs=60, pretrain_lr=0.05)
    s.setup(None, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(0))
    s.pretrain(torch.Generator().manual_seed(1))
    scores = (s.user_g @ s.item_g.T).detach()
    R = torch.from_numpy(g.train_csr.toarray().astype(bool))
    assert scores[R].mean() > scores[~R].mean() + 0.5
    assert "gen_pretrain_seconds" in s.stats() and "gen_pretrain_seconds" not in s.stats()


@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
def test_advir_perturbation_is_bounded_by_eps_and_raises_the_loss(eps):
    gg = torch.Generator().manual_seed(0)
    u, p, n = [torch.randn(16, 6, generator=gg, dtype=torch.float64, requires_grad=True)
               for _ in range(3)]
    loss = AdvBPR(eps=eps, weight=1.0)
    total = loss(u, p, n)
    clean = SoftBPR(0.0)(u, p, n)
    for d in loss.last_delta:
        norms = d.norm(dim=1)
        assert (norms <= eps * (1 + 1e-9)).all()
        torch.testing.assert_close(norms, torch.full_like(norms, eps))  # on the ε-sphere
    adv = total - clean
    assert adv.item() > clean.item()  # the ascent direction increases the BPR loss
    total.backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    # ε = 0: the adversarial term is the clean loss again
    assert AdvBPR(eps=0.0, weight=0.5)(u, p, n).item() == pytest.approx(1.5 * clean.item())
    with torch.no_grad():  # also defined without an autograd graph
        assert torch.isfinite(loss(u, p, n))


def test_presets_and_flags_of_the_baselines():
    for preset, sampler, lossname in [("mixgcf", "mixgcf", "bpr"), ("irgan", "irgan", "bpr"),
                                      ("advir", "advir", "adv_bpr")]:
        e = load(overrides={"preset": preset})
        assert (e.sampler.name, e.loss.name, e.method) == (sampler, lossname, preset)
    e = load(overrides={"preset": "advir", "eps": 0.2, "adv_weight": 2, "temperature": 0.5})
    assert e.loss.options() == {"eps": 0.2, "weight": 2.0}
    assert e.sampler.options()["temperature"] == 0.5
    assert isinstance(build_loss(e.loss.name, e.loss.alpha, **e.loss.options()), AdvBPR)
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        load(overrides={"temprature": 1.0})
    with pytest.raises(ConfigError, match="no effect with loss 'adv_bpr'"):
        load(overrides={"preset": "advir", "alpha": 0.5})
    with pytest.raises(ConfigError, match="temperature"):
        load(overrides={"preset": "irgan", "temperature": 0.0})


# ---------------------------------------------------------------------------------- end to end



FAST = ["--epochs", "1", "--dim", "16", "--batch-size", "128", "--device", "cpu", "--quiet",
        "--gen-pretrain-epochs", "1", "--gen-dim", "8", "--topk", "5,10", "--metric", "ndcg@10"]


@pytest.mark.parametrize("model,preset", [
    ("lightgcn", "mixgcf"), ("lightgcn", "irgan"), ("lightgcn", "advir"),
    ("ngcf", "rns"), ("ngcf", "dns"), ("ngcf", "sdns"), ("ngcf", "sdns-mix"),
    ("ngcf", "mixgcf"), ("ngcf", "irgan"), ("ngcf", "advir"),
])
def test_cli_runs_each_baseline(tmp_path, capsys, tiny_folder, model, preset):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), *FAST, "--model", model, "--preset", preset,
                 "--out", str(out)]) == 0
    assert "test recall@10" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == preset and cfg["model"]["name"] == model
    row = json.loads((out / "history.jsonl").read_text().splitlines()[0])
    assert {"sample_seconds", "score_gap", "neg_score", "valid"} <= set(row)
    width = 16 * 4 if model == "ngcf" else 16
    assert np.load(out / "embeddings.npz")["item_embeddings"].shape[1] == width


def test_ngcf_checkpoint_evaluates_to_the_same_metrics(tmp_path, tiny_folder):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), *FAST, "--model", "ngcf",
                 "--ngcf-variant", "mixgcf",
                 "--mess-dropout", "0.1", "--preset", "mixgcf", "--out", str(out)]) == 0
    res = json.loads((out / "result.json").read_text())
    p = subprocess.run([sys.executable, "-m", "softbpr", "evaluate", str(out), "--device", "cpu"],
                       capture_output=True, text=True, check=True)
    again = json.loads(p.stdout[:p.stdout.rindex("}") + 1])
    for k, v in res["test"].items():
        assert again["test"][k] == pytest.approx(v, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["--preset", "mixgcf"], ["--preset", "irgan"], ["--preset", "advir"],
    ["--model", "ngcf", "--preset", "dns"], ["--model", "ngcf", "--preset", "mixgcf"],
], ids=["lightgcn-mixgcf", "lightgcn-irgan", "lightgcn-advir", "ngcf-dns", "ngcf-mixgcf"])
def test_baselines_on_gowalla(tmp_path, args):
    """One epoch of each baseline on the LightGCN-format Gowalla: 3-7 minutes each on one CPU
    thread (OMP_NUM_THREADS=1 is much faster than 2 threads on a shared 2-core machine)."""
    data = shared_data("gowalla")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--quiet", "--device", "auto",
                 "--gen-pretrain-epochs", "1", *args, "--out", str(out)]) == 0
    row = json.loads((out / "history.jsonl").read_text().splitlines()[0])
    assert row["sample_seconds"] > 0 and np.isfinite(row["loss"])
    res = json.loads((out / "result.json").read_text())
    assert res["test"]["recall@20"] > 0
