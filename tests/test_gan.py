"""The GAN samplers (samplers/gan.py) and their generator (samplers/generator.py): G learns
what D scores high, the epoch schedule, batch caps, resume, IRGAN's per-user step."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import softbpr.samplers.generator as generator_module
from softbpr.config import SamplerConfig
from softbpr.graph import InteractionGraph
from softbpr.models import LightGCN
from softbpr.samplers import build_sampler
from softbpr.split import Pairs

GANS = ["irgan", "advir"]


def graph_of(split):
    return InteractionGraph.from_pairs(split.train, split.n_users, split.n_items)


def gan(name, gen_dim=8, gen_pretrain_epochs=1, gen_lr=1e-3, gen_samples=2, gen_epochs=1,
        **kwargs):
    """A GAN sampler from its config section; kwargs: constructor-only arguments."""
    cfg = SamplerConfig(name=name, gen_dim=gen_dim, gen_pretrain_epochs=gen_pretrain_epochs,
                        gen_lr=gen_lr, gen_samples=gen_samples, gen_epochs=gen_epochs)
    return build_sampler(cfg, **kwargs)


def gan_fixture(blocks, name, **kw):
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(0)
    s = gan(name, **kw)
    s.setup(D, g, blocks, torch.device("cpu"), gen)
    return g, D, gen, s


def count_calls(s) -> dict:
    """Wrap the sampler's G epoch, its draw of D's negatives and G's pre-training."""
    calls = {"gen": 0, "draw": 0, "pretrain": 0}
    for obj, attr, key in [(s, "train_generator", "gen"), (s.negatives, "fill", "draw"),
                           (s.G, "pretrain", "pretrain")]:
        real = getattr(obj, attr)

        def wrapped(*a, _real=real, _key=key, **k):
            calls[_key] += 1
            return _real(*a, **k)
        setattr(obj, attr, wrapped)
    return calls


@pytest.mark.parametrize("name", GANS)
def test_generator_learns_to_favour_what_the_discriminator_scores_high(blocks, name):
    """Against a fixed D, policy gradient moves G's mass to D's high-scored non-train items."""
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        emb = D.propagate(g)
        # rescale so that D's scores spread over a few units
        emb = type(emb)(emb.user * 6, emb.item * 6, emb.user_layers, emb.item_layers)
    gen = torch.Generator().manual_seed(0)
    s = gan(name, gen_lr=0.1, gen_samples=8, gen_pretrain_epochs=0)
    s.setup(D, g, blocks, torch.device("cpu"), gen)
    users = torch.arange(blocks.n_users)
    d_scores = emb.user @ emb.item.T  # [U, I]
    free = ~torch.from_numpy(g.train_csr.toarray().astype(bool))

    def expected_d_score():  # E_{j ~ p_θ}[ŷ_uj], averaged over users
        return float((s.G.probabilities(users) * d_scores).sum(1).mean())

    before = expected_d_score()
    uniform = float((d_scores * free).sum(1).div(free.sum(1)).mean())
    for _ in range(50):  # G epochs against the fixed D
        s.train_generator(emb, gen)
    after = expected_d_score()
    assert abs(before - uniform) < 0.5  # G starts near uniform (no pre-training here)
    assert after > before + 2.0  # measured: about -0.7 -> +4.3 (irgan), +5.0 (advir)
    p = s.G.probabilities(users)
    assert (p[~free] == 0).all()  # training positives get no mass
    top = d_scores.masked_fill(~free, -1e9).argmax(1)
    bottom = d_scores.masked_fill(~free, 1e9).argmin(1)
    assert (p.gather(1, top[:, None]) > p.gather(1, bottom[:, None])).float().mean() >= 0.9
    assert {"gen_reward", "gen_loss"} <= set(s.stats())


@pytest.mark.parametrize("name", GANS)
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
        # this epoch's negatives are exactly the pre-drawn ones, each slot served once
        got = sorted(map(tuple, torch.cat(served).tolist()))
        rows = torch.repeat_interleave(torch.arange(blocks.n_users), s.G.deg)
        assert got == sorted(map(tuple, torch.stack([rows, s.negatives.items], 1).tolist()))
    st = s.stats()
    assert {"neg_score", "neg_prob", "gen_reward", "gen_loss", "gen_pretrain_seconds",
            "gen_phase_seconds"} <= set(st)


def test_gan_sample_needs_setup_and_an_epoch(blocks):
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1)
    s = gan("irgan")
    with pytest.raises(RuntimeError, match="setup"):
        s.on_epoch_start(1)
    s.setup(D, g, blocks, torch.device("cpu"), None)
    with pytest.raises(RuntimeError, match="on_epoch_start"):
        s.sample(torch.tensor([0]), torch.tensor([0]), D.propagate(g), g, None)


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
            assert s.epoch == epoch
            assert counts[rank]["gen"] == epoch - 1  # one G phase before every epoch after 1
    n_active = int((ranks[0][3].G.deg > 0).sum())
    per_g_epoch = min(max_batches or n, -(-n_active // 2))  # batches of 2 users, capped
    assert len(steps) == world * (epochs - 1) * per_g_epoch
    for c in counts:
        assert c["pretrain"] == 1
        if not max_batches:
            assert c["draw"] == epochs  # every user's negatives at once, per epoch
        else:
            assert c["draw"] >= epochs  # capped: drawn per batch, for newly served users only


def test_capped_epochs_cap_pretraining_and_draw_only_served_users(blocks, monkeypatch):
    g, D, gen, s = gan_fixture(blocks, "irgan", pretrain_batch=4, gen_pretrain_epochs=3)
    steps = []  # pre-training draws DNS candidates once per step
    monkeypatch.setattr(generator_module, "uniform_candidates",
                        lambda *a, _real=generator_module.uniform_candidates:
                        (steps.append(1), _real(*a))[1])
    s.on_epoch_start(1, max_batches=2)
    assert len(steps) == 3 * 2  # 3 pre-training epochs of 2 batches of 4 pairs
    users = torch.tensor([0, 0, 5])
    pos = torch.from_numpy(blocks.train.items[[0, 1, 20]])
    emb = D.propagate(g)
    s.sample(users, pos, emb, g, gen)
    assert s.negatives.fresh.nonzero().squeeze(1).tolist() == [0, 5]  # only the served users
    st = s.stats()
    assert st["neg_prob"] > 0 and "gen_pretrain_seconds" in st


@pytest.mark.parametrize("name", GANS)
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
    torch.testing.assert_close(s2.G.user, s.G.user)


def test_generator_step_is_irgans_per_user_mean_in_any_block_size(blocks, monkeypatch):
    """One G step over a batch = −mean over users of the user's mean log p_θ(j)·r, with the
    same gradient whether the batch is scored in one block or user by user."""
    monkeypatch.setattr(generator_module, "draw", lambda p, k, g: torch.topk(p, k, dim=1).indices)
    keep = np.ones(len(blocks.train), bool)
    keep[[0, 1]] = False  # user 0 gets 2 positives, the others 4: unequal |P_u|
    blocks = dataclasses.replace(blocks, train=Pairs(blocks.train.users[keep],
                                                     blocks.train.items[keep]))
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    emb = D.propagate(g)
    grads = []
    for chunk in (None, blocks.n_items):  # one block / one user per block
        s = gan("advir", gen_pretrain_epochs=0, gen_batch_users=100, max_chunk_scores=chunk)
        s.setup(D, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(0))
        s.opt.step = lambda *a: None
        s.train_generator(emb, torch.Generator().manual_seed(0))
        grads.append([p.grad.clone() for p in s.G.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    # the reference: per user, the mean over its S·|P_u| draws (its positives in turn)
    G = s.G
    G.zero_grad(set_to_none=True)
    d = (emb.user @ emb.item.T).detach()
    per_user = []
    for u in range(blocks.n_users):
        logp = torch.log_softmax(G.logits(torch.tensor([u])), -1)[0]
        deg = int(G.deg[u])
        js = torch.topk(logp.detach().exp(), 2 * deg).indices
        pos = G.col[G.crow[u] + torch.arange(2 * deg) % deg]
        r = F.logsigmoid(d[u, js] - d[u, pos])
        per_user.append(-(logp[js] * r).mean())
    torch.stack(per_user).mean().backward()
    for a, p in zip(grads[0], G.parameters()):
        torch.testing.assert_close(a, p.grad)


@pytest.mark.parametrize("name", GANS)
def test_generator_sgd_steps_once_per_user_as_irgan(blocks, name):
    """gen_optimizer = sgd: plain SGD on the sum of the batch's per-user losses, i.e. a step of
    gen_lr per user (IRGAN's batch-1 SGD, to first order): the gradient of a batch of B users is
    B times the gradient of the mean loss (same draws); adam keeps Adam on the mean."""
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    emb = D.propagate(g)
    grads = {}
    for per_user in (False, True):
        s = gan(name, gen_pretrain_epochs=0, gen_lr=1e-3, gen_batch_users=100, gen_reg=0.1)
        s.setup(D, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(0))
        opt = torch.optim.SGD(s.G.parameters(), lr=1e-3)
        opt.step = lambda *a: None  # keep the batch's gradient
        s.G.policy_gradient_epoch(emb.user.detach(), emb.item.detach(), s.reward, opt, 2, 100,
                                  0.1, torch.Generator().manual_seed(0),
                                  per_user_steps=per_user)
        grads[per_user] = [p.grad.clone() for p in s.G.parameters()]
    users = int(s.G.active.numel())
    assert 1 < users <= 100  # one batch: the sum is `users` times the mean
    for a, b in zip(grads[False], grads[True]):
        assert float(b.abs().max()) > 0
        torch.testing.assert_close(b, a * users)
    for optimizer, cls in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)):
        cfg = SamplerConfig(name=name, gen_dim=4, gen_pretrain_epochs=0, gen_optimizer=optimizer)
        s = build_sampler(cfg)
        s.setup(D, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(0))
        assert type(s.opt) is cls
        # and the trainer's G epoch sums over users exactly when the optimiser is SGD
        seen = []
        s.G.policy_gradient_epoch = lambda *a, _seen=seen, **k: _seen.append(k["per_user_steps"])
        s.train_generator(emb, torch.Generator().manual_seed(0))
        assert seen == [optimizer == "sgd"]


def test_advir_reward_is_pairwise_and_irgan_pointwise():
    s_j, s_i = torch.randn(2, 5), torch.randn(2, 5)  # D's scores of drawn items and positives
    adv, irg = gan("advir"), gan("irgan")
    torch.testing.assert_close(adv.reward(s_j, s_i), F.logsigmoid(s_j - s_i))
    torch.testing.assert_close(irg.reward(s_j, s_i), 2 * (torch.sigmoid(s_j) - 0.5))


def test_irgan_pretraining_makes_the_generator_a_recommender(blocks):
    """G starts from a DNS-trained MF: after pre-training it scores training positives higher."""
    g = graph_of(blocks)
    s = gan("irgan", gen_pretrain_epochs=60, pretrain_lr=0.05)
    s.setup(None, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(1))
    s.on_epoch_start(1)
    scores = (s.G.user @ s.G.item.T).detach()
    R = torch.from_numpy(g.train_csr.toarray().astype(bool))
    assert scores[R].mean() > scores[~R].mean() + 0.5
    assert "gen_pretrain_seconds" in s.stats() and "gen_pretrain_seconds" not in s.stats()


# ------------------------------------------------------------------- G's inverse-CDF draws

def one_running_sum(probs, u):
    """The plain inverse CDF: the first j with cumsum(probs)[j] > u · total, in float64."""
    cdf = probs.double().cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True)


@pytest.mark.parametrize("n,k", [(1000, 3), (1000, 40), (37, 2), (4096, 1)],
                         ids=["two-level", "one-sum", "small-row", "whole-blocks"])
def test_inverse_cdf_picks_what_one_running_sum_picks(n, k):
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(3 * torch.randn(64, n, generator=g), -1)
    probs[torch.rand(64, n, generator=g) < 0.2] = 0.0  # masked positives
    u = torch.rand(64, k, dtype=torch.float64, generator=g)
    got = generator_module.inverse_cdf(probs, u, block=8)
    ref = one_running_sum(probs, u)
    assert (got == ref).float().mean() >= 0.999  # rounding may move a target at an interval end
    assert (probs.gather(1, got) > 0).all()


def test_inverse_cdf_never_picks_a_zero_probability_entry_at_the_edges():
    """Targets at 0 and at the largest uniform below 1, mass only in a row's first or last
    entry (a partial last block), rows not summing to 1, subnormal masses."""
    n, block = 21, 8  # blocks of 8, 8 and 5 entries
    rows = torch.zeros(6, n)
    rows[0, 0] = 1.0
    rows[1, n - 1] = 1.0
    rows[2, [3, n - 1]] = 0.5
    rows[3, 7] = 1e-30  # alone: any target lands on it
    rows[4, [0, 8]] = torch.tensor([1e-38, 3.0])
    rows[5, 15] = 2.5
    top = 1.0 - 2.0 ** -53
    u = torch.tensor([[0.0, top, 0.5, 1e-300]], dtype=torch.float64).expand(6, 4)
    for b in (block, n + 5):  # two levels (k · block small) and one running sum
        got = generator_module.inverse_cdf(rows, u.contiguous(), block=b)
        assert (rows.gather(1, got) > 0).all(), (b, got)
    assert generator_module.inverse_cdf(rows, u.contiguous(), block=block)[1].eq(n - 1).all()


def test_inverse_cdf_stays_inside_a_block_whose_running_sum_rounds_below_its_sum():
    """A block of wide-ranging masses whose float64 sum exceeds its float64 running sum (a
    different summation order), followed by an all-zero block: a target just below the row's
    total lies past the block's running sum and must still pick inside the block."""
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        x = torch.rand(64, generator=g) ** 40
        x[0] = 1.0
        if x.sum(dtype=torch.float64) > x.cumsum(0, dtype=torch.float64)[-1]:
            break
    else:
        pytest.fail("no block with a rounding gap found")
    probs = torch.cat([x, torch.zeros(64)]).unsqueeze(0)  # [1, 128]: two blocks of 64
    u = torch.tensor([[1.0 - 2.0 ** -53]], dtype=torch.float64)
    pick = generator_module.inverse_cdf(probs, u, block=64)
    assert pick.item() < 64 and probs[0, pick.item()] > 0


def test_draw_frequencies_match_the_probabilities():
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(300, generator=g), -1)
    p[::3] = 0.0
    p = p / p.sum()
    rows = p.expand(20_000, 300).contiguous()  # 2 draws a row: two levels (2·2·32 <= 300)
    got = generator_module.draw(rows, 2, torch.Generator().manual_seed(1))
    freq = torch.bincount(got.flatten(), minlength=300).float() / got.numel()
    assert (freq[::3] == 0).all()
    # per entry, |freq - p| within 5 binomial standard deviations
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / got.numel()).sqrt() + 1e-9).all()
