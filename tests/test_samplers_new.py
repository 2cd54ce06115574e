"""The samplers beyond the paper (DNS(M, N), AHNS, uniform with M negatives): their selection
rules on small hand-built cases and against a literal replay of the reference rule, the sampler
contract with M > 1 negatives per pair, and every new preset training with each model."""

import copy

import numpy as np
import pytest
import torch
from test_samplers import dense_graph, graph_of, same

from softbpr.cli import main
from softbpr.config import MULTI_NEGATIVE_SAMPLERS, PRESETS, ConfigError, SamplerConfig, load
from softbpr.graph import InteractionGraph
from softbpr.models import MF, MODELS, Embeddings, LightGCN, build_model
from softbpr.samplers import (
    AHNSSampler,
    DNSMNSampler,
    DynamicHardSampler,
    UniformSampler,
    build_sampler,
    uniform_candidates,
)
from softbpr.split import Pairs
from softbpr.trainer import fit

NEW_PRESETS = ["dns-mn", "softmax-rho", "ahns", "hard-bpr", "sl", "sl-batch", "sl-batch-logq",
               "sl-dns", "bsl", "bsl-batch", "bsl-batch-logq", "psl"]


def batch_of(split, repeat=3):
    users = torch.arange(split.n_users).repeat(repeat)
    pos = torch.from_numpy(split.train.items[np.searchsorted(split.train.users, users.numpy())])
    return users, pos


# ------------------------------------------------------------------------------- DNS(M, N)

def test_dns_mn_keeps_the_m_highest_scored_of_n_candidates(blocks):
    g = graph_of(blocks)
    model = LightGCN(blocks.n_users, blocks.n_items, dim=8, layers=2,
                     generator=torch.Generator().manual_seed(0))
    emb = model.propagate(g)
    users, pos = batch_of(blocks, 5)
    N, M = 7, 3
    neg = DNSMNSampler(N, M).sample(users, pos, emb, g, torch.Generator().manual_seed(4))
    cand = uniform_candidates(g, users, N, torch.Generator().manual_seed(4))  # the same draws
    sc = (emb.user[users].unsqueeze(1) * emb.item[cand]).sum(-1)  # [B, N]
    order = sc.argsort(1, descending=True)[:, :M]
    assert torch.equal(neg.items, cand.gather(1, order))  # the top M, in decreasing score
    torch.testing.assert_close(neg.emb, emb.item[neg.items])
    neg.emb.sum().backward()
    assert model.item_emb.grad.abs().sum() > 0
    # M = N keeps every candidate (a permutation of the draws); M = 1 is sampler dns exactly
    allc = DNSMNSampler(N, N).sample(users, pos, emb, g, torch.Generator().manual_seed(4))
    assert torch.equal(allc.items.sort(1).values, cand.sort(1).values)
    one = DNSMNSampler(N, 1).sample(users, pos, emb, g, torch.Generator().manual_seed(4))
    dns = DynamicHardSampler(N).sample(users, pos, emb, g, torch.Generator().manual_seed(4))
    assert one.items.shape == users.shape and torch.equal(one.items, dns.items)


def test_dns_mn_hand_built_scores():
    """One user, MF scores ŷ_uj = j/10 for the free items 6..9 (items 0..5 are positives).
    The N candidates are independent draws (with replacement, as the reference's randint), so
    DNS(2, 40) keeps item 9 twice; DNS(2, 3) the two best of its three draws."""
    g = InteractionGraph.from_pairs(Pairs(np.zeros(6, np.int64), np.arange(6)), 1, 10)
    emb = Embeddings(torch.ones(1, 1), torch.arange(10.0).unsqueeze(1) / 10,
                     [torch.ones(1, 1)], [torch.arange(10.0).unsqueeze(1) / 10])
    users = torch.zeros(5, dtype=torch.long)
    neg = DNSMNSampler(40, 2).sample(users, users, emb, g, torch.Generator().manual_seed(0))
    assert neg.items.tolist() == [[9, 9]] * 5
    gen = torch.Generator().manual_seed(1)
    neg = DNSMNSampler(3, 2).sample(users, users, emb, g, gen)
    draws = uniform_candidates(g, users, 3, torch.Generator().manual_seed(1))
    assert neg.items.tolist() == draws.sort(1, descending=True).values[:, :2].tolist()
    with pytest.raises(ValueError, match="1 <= M <= N"):
        DNSMNSampler(4, 5)
    with pytest.raises(ConfigError, match="must be <= pool_size"):
        SamplerConfig(name="dns_mn", pool_size=4, n_negatives=5)
    with pytest.raises(ConfigError, match="only used by samplers uniform, dns_mn, ahns"):
        SamplerConfig(name="dns", n_negatives=2)


# ------------------------------------------------------------------------------------ AHNS

def ahns_reference(s_pos, cand_scores, alpha, beta, p):
    """Riwei-HEU/AHNS `adaptive_negative_sampling`, literally (inner-product similarity)."""
    scores = torch.abs(cand_scores - beta * (s_pos.unsqueeze(1) + alpha).pow(p + 1))
    return torch.min(scores, dim=1)[1]


@pytest.mark.parametrize("s_pos,expect", [(1.0, 6), (-0.8, 8), (-0.95, 9), (3.0, 6)])
def test_ahns_picks_the_candidate_closest_to_the_adaptive_target(s_pos, expect):
    """One user with free items 6..9 scored 0.05, 0.3, 0.5, 2.0; target β/(ŷ_ui + α) with the
    reference defaults α = 1, β = 0.1, p = −2: ŷ_ui = 1 -> 0.05 (item 6), −0.8 -> 0.5 (item 8),
    −0.95 -> 2.0 (item 9), 3 -> 0.025 (item 6). A well-ranked positive gets an easy negative."""
    item_score = torch.tensor([9.0, 9, 9, 9, 9, s_pos, 0.05, 0.3, 0.5, 2.0]).unsqueeze(1)
    g = InteractionGraph.from_pairs(Pairs(np.zeros(6, np.int64), np.arange(6)), 1, 10)
    emb = Embeddings(torch.ones(1, 1), item_score, [torch.ones(1, 1)], [item_score])
    users, pos = torch.zeros(4, dtype=torch.long), torch.full((4,), 5)
    s = AHNSSampler(40, 1.0, 0.1, -2)
    neg = s.sample(users, pos, emb, g, torch.Generator().manual_seed(0))
    assert neg.items.tolist() == [expect] * 4
    assert s.stats()["ahns_target"] == pytest.approx(0.1 / (s_pos + 1.0))


@pytest.mark.parametrize("p", [-2, 0, 1])
def test_ahns_matches_the_reference_rule_on_replayed_candidates(blocks, p):
    g = graph_of(blocks)
    model = LightGCN(blocks.n_users, blocks.n_items, dim=8, layers=2,
                     generator=torch.Generator().manual_seed(2))
    emb = model.propagate(g)
    users, pos = batch_of(blocks, 4)
    H, M = 6, 2
    s = AHNSSampler(H, alpha=0.5, beta=0.3, p=p, n_negatives=M)
    neg = s.sample(users, pos, emb, g, torch.Generator().manual_seed(5))
    cand = uniform_candidates(g, users, M * H, torch.Generator().manual_seed(5)).view(-1, M, H)
    with torch.no_grad():
        u = emb.user[users]
        s_pos = (u * emb.item[pos]).sum(-1)
        for m in range(M):
            sc = (u.unsqueeze(1) * emb.item[cand[:, m]]).sum(-1)
            idx = ahns_reference(s_pos, sc, 0.5, 0.3, p)
            assert torch.equal(neg.items[:, m], cand[:, m].gather(1, idx.unsqueeze(1))[:, 0])
    assert neg.emb.shape == (len(users), M, 8) and neg.emb.requires_grad


# ----------------------------------------------------------------- uniform with M negatives

def test_uniform_with_m_negatives_and_the_single_draw_unchanged(blocks):
    g = graph_of(blocks)
    model = MF(blocks.n_users, blocks.n_items, dim=4, generator=torch.Generator().manual_seed(0))
    emb = model.propagate(g)
    users, pos = batch_of(blocks)
    one = UniformSampler().sample(users, pos, emb, g, torch.Generator().manual_seed(1))
    ref = uniform_candidates(g, users, 1, torch.Generator().manual_seed(1))[:, 0]
    assert torch.equal(one.items, ref)  # M = 1: the same stream as before n_negatives existed
    many = UniformSampler(5).sample(users, pos, emb, g, torch.Generator().manual_seed(1))
    assert torch.equal(many.items, uniform_candidates(g, users, 5,
                                                      torch.Generator().manual_seed(1)))
    assert many.emb.shape == (len(users), 5, 4)


# --------------------------------------------------- the contract with M negatives per pair

@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", MULTI_NEGATIVE_SAMPLERS)
def test_multi_negative_samplers_keep_the_contract(blocks, name, model_name):
    """As test_samplers' lifecycle check, with M = 3 negatives per pair: shapes [B, M] and
    [B, M, d'], never a training positive, finite stats reset on read, state round trip."""
    g = graph_of(blocks)
    model = build_model(model_name, blocks.n_users, blocks.n_items, 8, 2, "xavier",
                        torch.Generator().manual_seed(0))
    cfg = SamplerConfig(name=name, pool_size=4, n_negatives=3)
    sampler = build_sampler(cfg)
    gen = torch.Generator().manual_seed(0)
    sampler.setup(model, g, blocks, torch.device("cpu"), gen)
    users, pos = batch_of(blocks)
    for epoch in (1, 2):
        sampler.on_epoch_start(epoch, max_batches=0)
        neg = sampler.sample(users, pos, model.propagate(g), g, gen)
        assert neg.items.shape == (len(users), 3)
        assert neg.emb.shape == (len(users), 3, model.out_dim) and neg.emb.requires_grad
        assert not g.is_positive(users.unsqueeze(1).expand(-1, 3), neg.items).any()
        st = sampler.stats()
        assert "neg_score" in st and all(np.isfinite(v) for v in st.values())
        assert "neg_score" not in sampler.stats()
    again = build_sampler(cfg)
    again.setup(model, g, blocks, torch.device("cpu"), torch.Generator().manual_seed(1))
    again.load_state_dict(copy.deepcopy(sampler.state_dict()))
    assert same(again.state_dict(), sampler.state_dict())


@pytest.mark.parametrize("name", MULTI_NEGATIVE_SAMPLERS)
def test_multi_negative_samplers_never_return_a_known_positive(name):
    """The dense graph of test_samplers (user 0 owns every item but 5): all M negatives of user
    0 are item 5, and no negative of anyone is a training positive."""
    g, p = dense_graph()
    model = LightGCN(7, 11, dim=8, layers=2, generator=torch.Generator().manual_seed(1))
    sampler = build_sampler(SamplerConfig(name=name, pool_size=8, n_negatives=4))
    gen = torch.Generator().manual_seed(0)
    sampler.setup(model, g, None, torch.device("cpu"), gen)
    known = set(zip(p.users.tolist(), p.items.tolist()))
    users = torch.arange(7).repeat(60)
    pos = torch.from_numpy(p.items[np.searchsorted(p.users, users.numpy())])
    for epoch in (1, 2, 3):
        sampler.on_epoch_start(epoch)
        neg = sampler.sample(users, pos, model.propagate(g), g, gen)
        pairs = {(u, j) for u, row in zip(users.tolist(), neg.items.tolist()) for j in row}
        assert not pairs & known
        assert set(neg.items[users == 0].flatten().tolist()) == {5}


# ------------------------------------------------------------ every new preset, every model

SMALL = {"data": "synthetic-small", "dim": 8, "layers": 1, "epochs": 2, "eval_every": 1,
         "batch_size": 256, "max_batches": 2, "device": "cpu", "topk": "10",
         "metric": "ndcg@10", "pool_size": 8}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("preset", NEW_PRESETS)
def test_every_new_preset_trains_with_every_model(preset, model):
    """Two capped epochs on synthetic-small (the presets' own sizes scaled down: N = 8
    candidates, M <= 4 negatives)."""
    over = {**SMALL, "preset": preset, "model": model}
    if PRESETS[preset]["sampler"].get("n_negatives", 1) > 1:
        over["n_negatives"] = 4
    exp = load(overrides=over)
    assert exp.method == preset
    run = fit(exp, log=lambda m: None, progress=False)
    assert len(run.history) == 2 and run.test and np.isfinite(run.history[-1]["loss"])
    assert np.isfinite(run.test["ndcg@10"])


def test_new_presets_through_the_cli_sweep_report_and_plot(tmp_path, capsys):
    """`softbpr train`, then a sweep over the new presets, `report` and `plot`."""
    out = tmp_path / "run"
    args = ["--data", "synthetic-small", "--dim", "8", "--layers", "1", "--epochs", "1",
            "--max-batches", "2", "--device", "cpu", "--quiet", "--topk", "10",
            "--metric", "ndcg@10"]
    assert main(["train", *args, "--preset", "bsl-batch", "--soften", "0.5",
                 "--out", str(out)]) == 0
    assert '"method": "bsl-batch"' in (out / "config.json").read_text()
    sweep = tmp_path / "s.toml"
    bundles = ", ".join(f'{{ label = "{p}", preset = "{p}" }}' for p in
                        ("dns", "ahns", "sl", "psl"))
    sweep.write_text(f'[sweep]\nname = "new"\nout = "{tmp_path / "sw"}"\nseeds = [1]\n'
                     '[base]\ndata = "synthetic-small"\ndim = 8\nlayers = 1\nepochs = 2\n'
                     'eval_every = 1\nmax_batches = 2\ndevice = "cpu"\ntopk = [10]\n'
                     'metric = "ndcg@10"\npool_size = 8\nn_negatives = 1\n'
                     f'[grid]\nmethod = [{bundles}, {{ label = "sl-soft", preset = "sl", '
                     'soften = 0.5 }]\n')
    assert main(["sweep", str(sweep)]) == 0
    assert main(["report", str(tmp_path / "sw")]) == 0
    report = (tmp_path / "sw" / "report.md").read_text()
    for m in ("AHNS", "SL", "PSL"):  # report.DISPLAY names
        assert f"| {m} |" in report
    pytest.importorskip("matplotlib")
    assert main(["plot", str(tmp_path / "sw"), "--out", str(tmp_path / "plots")]) == 0
    assert any((tmp_path / "plots").iterdir())
