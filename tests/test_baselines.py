"""The paper's baselines as plug-ins: NGCF, MixGCF, IRGAN and AdvIR pin their defining behaviour."""

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


@pytest.mark.parametrize("name", ["irgan", "advir"])
def test_gan_schedule_one_generator_phase_and_redraw_per_epoch(blocks, name):
    """D epoch 1 uses the pre-trained G; after every n_train pairs G trains, then D's negatives
    are redrawn from softmax(g / T): |P_u| per user, each served once per epoch."""
    g = graph_of(blocks)
    D = LightGCN(blocks.n_users, blocks.n_items, 8, 1, generator=torch.Generator().manual_seed(4))
    emb = D.propagate(g)
    gen = torch.Generator().manual_seed(0)
    s = build_sampler(name, 1, gen_dim=8, pretrain_epochs=1, gen_epochs=2)
    s.setup(D, g, blocks, torch.device("cpu"), gen)
    calls = {"gen": 0, "redraw": 0}
    real_train, real_redraw = s.train_generator, s.redraw
    s.train_generator = lambda *a: (calls.__setitem__("gen", calls["gen"] + 1), real_train(*a))
    s.redraw = lambda *a: (calls.__setitem__("redraw", calls["redraw"] + 1), real_redraw(*a))
    u_all, i_all = torch.from_numpy(blocks.train.users), torch.from_numpy(blocks.train.items)
    n = len(u_all)
    for epoch in range(3):
        perm = torch.randperm(n, generator=gen)
        served = []
        for b in range(0, n, 10):  # batches of 10 pairs, the last one smaller
            idx = perm[b:b + 10]
            neg = s.sample(u_all[idx], i_all[idx], emb, g, gen)
            assert not g.is_positive(u_all[idx], neg.items).any()
            served.append(torch.stack([u_all[idx], neg.items], 1))
        assert calls == {"gen": 2 * epoch, "redraw": epoch + 1}
        # this epoch's negatives are exactly the pre-drawn cache, each slot served once
        got = sorted(map(tuple, torch.cat(served).tolist()))
        rows = torch.repeat_interleave(torch.arange(blocks.n_users), s._deg)
        assert got == sorted(map(tuple, torch.stack([rows, s._cache], 1).tolist()))
    st = s.stats()
    assert {"neg_score", "neg_prob", "gen_reward", "gen_loss", "gen_pretrain_seconds",
            "gen_phase_seconds"} <= set(st)
    s.end_epoch()  # a caller may end an epoch early: the next batch starts a G phase
    s.sample(u_all[:3], i_all[:3], emb, g, gen)
    assert calls == {"gen": 6, "redraw": 4}


def test_advir_reward_is_pairwise_and_irgan_pointwise():
    d = torch.randn(2, 9)  # D's scores of 2 users for 9 items
    i, j = torch.tensor([[1, 1], [4, 5]]), torch.tensor([[2, 3], [6, 7]])
    adv, irg = build_sampler("advir", 1), build_sampler("irgan", 1)
    torch.testing.assert_close(adv.reward(d, i, j), F.logsigmoid(d.gather(1, j) - d.gather(1, i)))
    torch.testing.assert_close(irg.reward(d, i, j), 2 * (torch.sigmoid(d.gather(1, j)) - 0.5))


def test_irgan_pretraining_makes_the_generator_a_recommender(blocks):
    """G starts from a DNS-trained MF: after pre-training it scores training positives higher."""
    g = graph_of(blocks)
    s = build_sampler("irgan", 1, gen_dim=8, pretrain_epochs=60, pretrain_lr=0.05)
    s.setup(None, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(0))
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
