"""Evaluation at scale: seeded user samples for validation, progress lines with an ETA."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from softbpr.evaluate import RankingTask, rank_metrics, score_task
from softbpr.progress import ProgressLog


def _problem(n_users=500, n_items=80, d=8, seed=0):
    rng = np.random.default_rng(seed)
    uv = torch.from_numpy(rng.standard_normal((n_users, d)).astype(np.float32))
    iv = torch.from_numpy(rng.standard_normal((n_items, d)).astype(np.float32))
    truth = sp.random(n_users, n_items, density=0.05, format="csr", random_state=seed)
    mask = sp.random(n_users, n_items, density=0.1, format="csr", random_state=seed + 1)
    mask = (mask - mask.multiply(truth > 0)).tocsr()  # masked items are never held out
    mask.eliminate_zeros()
    mask.sort_indices()
    truth.data[:] = 1
    return uv, iv, truth, mask


def test_sample_is_seeded_and_matches_a_subset_evaluation():
    uv, iv, truth, mask = _problem()
    n_all = int((np.diff(truth.indptr) > 0).sum())
    task = RankingTask.build(truth, mask, "cpu", sample=100, seed=3)
    assert task.sampled and task.n_total == n_all and task.users.numel() == 100
    again = RankingTask.build(truth, mask, "cpu", sample=100, seed=3)
    assert torch.equal(task.users, again.users)  # the same users at every evaluation
    other = RankingTask.build(truth, mask, "cpu", sample=100, seed=4)
    assert not torch.equal(task.users, other.users)
    # the sampled metrics are the exact metrics of those users: evaluate a truth matrix that
    # holds only their rows, without sampling
    keep = np.zeros(truth.shape[0], dtype=bool)
    keep[task.users.numpy()] = True
    sub = sp.diags(keep.astype(np.float64)) @ truth
    sub = sp.csr_matrix(sub)
    sub.eliminate_zeros()
    want = rank_metrics(uv, iv, sub, mask, ks=(5, 10))
    got = score_task(task, uv, iv, ks=(5, 10))
    assert got["users"] == want["users"] == 100
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    # and they differ from the all-user metrics (it is a sample)
    full = rank_metrics(uv, iv, truth, mask, ks=(5, 10))
    assert full["users"] == n_all and full["ndcg@10"] != got["ndcg@10"]


def test_sample_larger_than_population_is_exact():
    uv, iv, truth, mask = _problem()
    task = RankingTask.build(truth, mask, "cpu", sample=10**6, seed=0)
    assert not task.sampled
    n_all = int((np.diff(truth.indptr) > 0).sum())
    assert not RankingTask.build(truth, mask, "cpu", sample=n_all, seed=0).sampled
    assert score_task(task, uv, iv) == rank_metrics(uv, iv, truth, mask)


def test_ranks_share_the_same_sample():
    uv, iv, truth, mask = _problem()
    one = RankingTask.build(truth, mask, "cpu", sample=101, seed=1)
    parts = [RankingTask.build(truth, mask, "cpu", (r, 3), sample=101, seed=1) for r in range(3)]
    got = torch.sort(torch.cat([p.users for p in parts])).values
    assert torch.equal(got, one.users)
    # the rank-weighted means combine to the one-process result
    res = [score_task(p, uv, iv) for p in parts]
    whole = score_task(one, uv, iv)
    for k in ("recall@20", "ndcg@50"):
        comb = sum(r[k] * r["users"] for r in res) / sum(r["users"] for r in res)
        assert comb == pytest.approx(whole[k], abs=1e-12)


def test_progress_calls_and_lines():
    uv, iv, truth, mask = _problem()
    task = RankingTask.build(truth, mask, "cpu")
    seen = []
    score_task(task, uv, iv, batch_users=64, progress=seen.append)
    n = task.users.numel()
    assert seen == [min(s + 64, n) for s in range(0, n, 64)]
    # ProgressLog: silent for short loops, one line per `every` seconds with an ETA
    t = [0.0]
    lines = []
    p = ProgressLog(1000, "evaluate valid", lines.append, every=30, unit="users",
                    clock=lambda: t[0])
    t[0] = 10.0
    p.update(100)
    assert lines == []
    t[0] = 40.0
    p.update(400)
    assert lines == ["evaluate valid: 400 / 1,000 users (40%), 40 s, ETA 60 s"]
    t[0] = 50.0
    p.update(500)  # less than `every` since the last line
    t[0] = 80.0
    p.update(1000)  # done: the caller reports the end itself
    assert len(lines) == 1


def test_trainer_validates_on_a_sample_and_tests_all(tmp_path):
    """eval.valid_users: validation scores a seeded sample (said in the output and result.json),
    the final test scores every user."""
    import json

    import softbpr

    exp = softbpr.load_config(None, {"data": "synthetic-small", "epochs": 1, "dim": 8,
                                     "valid_users": 50, "device": "cpu"})
    lines = []
    run = softbpr.train(exp, out_dir=tmp_path / "r", log=lines.append, progress=False)
    said = [ln for ln in lines if "seeded sample" in ln]
    assert said and "50 of the" in said[0] and "the test scores all" in said[0]
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    n_valid_users = len(np.unique(run.split.valid.users))
    assert res["valid_users"] == {"sampled": 50, "of": n_valid_users, "seed": exp.data.seed}
    assert n_valid_users > 50
    # the test is exact: the same metrics as an all-user evaluation of the final model
    from softbpr.trainer import evaluate_model

    full = evaluate_model(run.model, run.graph, run.split, "test", exp.eval.topk)
    assert full["users"] == len(np.unique(run.split.test.users))
    assert res["test"]["ndcg@50"] == pytest.approx(full["ndcg@50"], abs=1e-6)
    # 0 = all users: no sample, nothing in result.json
    exp0 = softbpr.with_updates(exp, valid_users=0)
    softbpr.train(exp0, out_dir=tmp_path / "r0", log=lambda s: None, progress=False)
    assert "valid_users" not in json.loads((tmp_path / "r0" / "result.json").read_text())
