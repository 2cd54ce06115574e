"""CPU/CUDA parity (run with `pytest -m gpu` on a machine with a GPU; skipped elsewhere)."""

import copy

import numpy as np
import pytest
import torch

from softbpr.config import SamplerConfig, load
from softbpr.evaluate import rank_metrics
from softbpr.graph import InteractionGraph
from softbpr.models import build_model
from softbpr.samplers import SAMPLERS, build_sampler
from softbpr.trainer import fit

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("name", ["mf", "lightgcn", "ngcf"])
def test_propagation_parity(name, blocks):
    cpu = torch.device("cpu")
    gpu = torch.device("cuda")
    g_c = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items, cpu)
    g_g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items, gpu)
    m = build_model(name, blocks.n_users, blocks.n_items, 16, 3, "xavier",
                    torch.Generator().manual_seed(0))
    m.eval()
    e_c = m.propagate(g_c)  # (MF returns its own parameters: move a copy, not m itself)
    m_g = copy.deepcopy(m).to(gpu)
    e_g = m_g.propagate(g_g)
    torch.testing.assert_close(e_c.user, e_g.user.cpu(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(e_c.item, e_g.item.cpu(), rtol=1e-4, atol=1e-5)
    (e_g.user.sum() + e_g.item.sum()).backward()  # backward of the custom spmm on CUDA


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_on_gpu(sampler, blocks):
    gpu = torch.device("cuda")
    g = InteractionGraph.from_pairs(blocks.train, blocks.n_users, blocks.n_items, gpu)
    m = build_model("lightgcn", blocks.n_users, blocks.n_items, 8, 2, "xavier",
                    torch.Generator().manual_seed(0)).to(gpu)
    s = build_sampler(SamplerConfig(name=sampler, pool_size=8, gen_dim=8, gen_pretrain_epochs=1))
    s.setup(m, g, blocks, gpu, None)
    s.on_epoch_start(1)
    users = torch.arange(blocks.n_users, device=gpu).repeat(20)
    neg = s.sample(users, users % blocks.n_items, m.propagate(g), g,
                   torch.Generator(device=gpu).manual_seed(0))
    assert neg.emb.device.type == "cuda" and neg.emb.shape[0] == users.numel()
    if neg.items is not None:
        assert not g.is_positive(users, neg.items).any()


def test_metrics_parity():
    rng = np.random.default_rng(0)
    import scipy.sparse as sp
    U, I = 50, 70
    uv, iv = torch.randn(U, 8), torch.randn(I, 8)
    truth = sp.random(U, I, density=0.1, format="csr", random_state=1)
    truth.data[:] = 1
    mask = sp.csr_matrix((U, I))
    a = rank_metrics(uv, iv, truth, mask, (5, 10))
    b = rank_metrics(uv.cuda(), iv.cuda(), truth, mask, (5, 10))
    assert a == pytest.approx(b)
    _ = rng


def test_fit_on_gpu(blocks):
    exp = load(overrides={"dim": 8, "layers": 2, "batch_size": 16, "epochs": 4, "eval_every": 2,
                          "topk": "2,5", "metric": "recall@5", "device": "cuda"})
    run = fit(exp, split=blocks, log=lambda m: None, progress=False)
    assert run.test["recall@5"] > 0
