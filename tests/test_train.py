"""Training: a toy run learns, runs are reproducible, a NaN loss stops with the checkpoint kept."""

import json

import pytest
import torch

from softbpr.config import load
from softbpr.trainer import TrainingDiverged, fit


def toy_exp(**over):
    base = {"model": "lightgcn", "dim": 16, "layers": 2, "batch_size": 16, "epochs": 30,
            "eval_every": 5, "patience": 0, "lr": 0.02, "reg": 0.0, "topk": "2,5",
            "metric": "recall@5", "device": "cpu", "preset": "rns"}
    base.update(over)
    return load(overrides=base)


@pytest.mark.parametrize("preset", ["rns", "dns", "sdns"])
def test_toy_run_loss_falls_and_recall_rises(blocks, preset):
    run = fit(toy_exp(preset=preset), split=blocks, log=lambda m: None, progress=False)
    losses = [r["loss"] for r in run.history]
    assert losses[-1] < losses[0] - 0.05
    first_valid = run.history[4]["valid"]["recall@5"]
    assert run.valid["recall@5"] >= first_valid
    # 9 in-block items per user, 4 of them train (masked): a model that learned the blocks ranks
    # the 5 other in-block items first, so recall@5 -> 1; chance is 5/14 = 0.36. Hard samplers
    # pick the unliked in-block items as negatives (false negatives in this toy), so they get a
    # looser bound on validation.
    if preset == "rns":
        assert run.valid["recall@5"] >= 0.9 and run.test["recall@5"] >= 0.9
    else:
        assert run.valid["recall@5"] >= 0.5 and run.test["recall@5"] >= 0.75


def test_reproducible_on_cpu(blocks):
    a = fit(toy_exp(epochs=6, preset="sdns"), split=blocks, log=lambda m: None, progress=False)
    b = fit(toy_exp(epochs=6, preset="sdns"), split=blocks, log=lambda m: None, progress=False)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert a.test == b.test
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)


def test_early_stopping_restores_best(blocks):
    run = fit(toy_exp(epochs=200, eval_every=1, patience=3, lr=0.05), split=blocks,
              log=lambda m: None, progress=False)
    evals = [r for r in run.history if "valid" in r]
    assert len(run.history) < 200  # stopped early
    best = max(evals, key=lambda r: r["valid"]["recall@5"])
    assert run.best_epoch == best["epoch"]
    assert run.valid == best["valid"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(blocks, tmp_path, monkeypatch):
    import softbpr.trainer as tr

    calls = {"n": 0}
    real = tr.build_loss

    from softbpr.losses import Loss

    class Flaky(Loss):  # a plug-in loss subclasses losses.Loss (docs/extending.md)
        def __init__(self, cfg):
            self.inner = real(cfg)
            self.alpha = self.inner.alpha

        def __call__(self, u, p, n):
            calls["n"] += 1
            v = self.inner(u, p, n)
            return v * float("nan") if calls["n"] > 12 else v  # 3 batches/epoch: epoch 5 fails

    flaky = Flaky

    monkeypatch.setattr(tr, "build_loss", flaky)
    with pytest.raises(TrainingDiverged, match="epoch 5.*non-finite"):
        fit(toy_exp(batch_size=20, eval_every=2), split=blocks, out_dir=tmp_path,
            log=lambda m: None, progress=False)
    ck = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ck["epoch"] in (2, 4)
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values())
    rows = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 5


def test_max_batches_caps_each_epoch(blocks):
    """train.max_batches: each epoch trains on that many batches of its shuffled order."""
    exp = load(overrides={"dim": 8, "layers": 1, "batch_size": 4, "epochs": 2, "eval_every": 1,
                          "topk": "2,5", "metric": "recall@5", "device": "cpu",
                          "max_batches": 3})
    seen = []
    orig = torch.optim.Adam.step

    def count(self, *a, **k):
        seen.append(1)
        return orig(self, *a, **k)

    torch.optim.Adam.step = count
    try:
        run = fit(exp, split=blocks, log=lambda m: None, progress=False)
    finally:
        torch.optim.Adam.step = orig
    assert len(seen) == 6 and len(run.history) == 2  # 48 pairs / 4 = 12 batches, capped at 3
    assert run.result()["stop_reason"] == "epochs"


def test_time_limit_stops_validates_and_keeps_the_best(blocks, tmp_path, monkeypatch):
    """train.time_limit: past the budget, the epoch just trained is validated (although
    eval_every does not fall on it), training stops, the best weights are tested."""
    import softbpr.trainer as tm

    clock = iter(range(0, 10_000, 30))  # each perf_counter call: +30 s
    monkeypatch.setattr(tm.time, "perf_counter", lambda: float(next(clock)))
    exp = load(overrides={"dim": 8, "layers": 1, "batch_size": 16, "epochs": 50, "eval_every": 7,
                          "topk": "2,5", "metric": "recall@5", "device": "cpu",
                          "time_limit": 5, "patience": 0})
    run = fit(exp, split=blocks, out_dir=tmp_path / "r", log=lambda m: None, progress=False)
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["stop_reason"] == "time_limit" and 1 <= res["epochs_run"] < 50
    assert "valid" in run.history[-1] and res["epochs_run"] % 7 != 0
    assert run.best_epoch in [r["epoch"] for r in run.history if "valid" in r]
    assert res["test"]["recall@5"] >= 0


def test_stoprun_from_callback_ends_cleanly(blocks, tmp_path):
    """on_epoch may raise StopRun (a tuner pruning a trial): training stops after that epoch,
    the best weights are tested and result.json records the reason."""
    from softbpr.trainer import StopRun

    def prune(row):
        if row["epoch"] == 4:
            raise StopRun("pruned")

    run = fit(toy_exp(epochs=20, eval_every=2), split=blocks, out_dir=tmp_path / "r",
              on_epoch=prune, log=lambda m: None, progress=False)
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["stop_reason"] == "pruned" == run.stop_reason
    assert res["epochs_run"] == 4 and run.best_epoch in (2, 4)
    assert res["test"]["recall@5"] >= 0 and (tmp_path / "r" / "model.pt").exists()


def test_history_delta_is_losses_gradient_weight(blocks, monkeypatch):
    """The history's Δ (grad_weight, delta_*) comes from losses.gradient_weight with the loss's
    own α: patching that function must show in the history."""
    import softbpr.trainer as tr

    seen = []

    def fake(diff, alpha):
        seen.append(alpha)
        return torch.full_like(diff, 0.25)

    monkeypatch.setattr(tr, "gradient_weight", fake)
    run = fit(toy_exp(epochs=1, preset="sdns", alpha=0.7), split=blocks, log=lambda m: None,
              progress=False)
    assert run.history[0]["grad_weight"] == pytest.approx(0.25)
    assert set(seen) == {0.7}


def test_resume_refuses_a_state_of_another_config(blocks, tmp_path):
    """state.pt carries a fingerprint of the config and data: resuming it under another
    config (here another dim) is refused with a message naming what differs."""
    import pytest as _pt

    class Crash(Exception):
        pass

    def crash(row):
        if row["epoch"] == 2:
            raise Crash()

    with _pt.raises(Crash):
        fit(toy_exp(epochs=4), split=blocks, out_dir=tmp_path, on_epoch=crash,
            log=lambda m: None, progress=False)
    with _pt.raises(ValueError, match="model.dim"):
        fit(toy_exp(epochs=4, dim=8), split=blocks, out_dir=tmp_path, resume=True,
            log=lambda m: None, progress=False)


def test_resume_without_state_starts_afresh(blocks, tmp_path):
    """A run interrupted before its first state.pt can still be resumed: it starts over."""
    (tmp_path / "config.json").write_text("{}")
    run = fit(toy_exp(epochs=2), split=blocks, out_dir=tmp_path, resume=True,
              log=lambda m: None, progress=False)
    assert [r["epoch"] for r in run.history] == [1, 2]
    assert json.loads((tmp_path / "config.json").read_text())["train"]["epochs"] == 2
