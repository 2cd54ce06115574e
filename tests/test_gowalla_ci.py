"""Issue 3 in CI: each baseline runs end to end from the CLI on the LightGCN-format Gowalla.

The NGCF model and the MixGCF, IRGAN and AdvIR samplers each train 2 epochs of 2 batches
(`--max-batches 2`, which also caps the GAN generator's pre-training and generator epochs; see
softbpr.samplers.gan), evaluated on validation every epoch, then once on test, through
`softbpr train` (cli.main, in process). Full epochs take 2-9 minutes each on one CPU thread:
those runs are `test_cli_runs.py::test_baselines_on_gowalla` (marked slow). Here the cost is
the full-ranking evaluations over 29,858 users x 40,981 items (about 6 s each for LightGCN,
10 s for NGCF on one thread), so the module takes about 2-2.5 minutes with OMP_NUM_THREADS=1.
Gowalla is read once per module: the trainer's `load_split` is served from a module fixture
that loaded the same data config (any other config falls through to the real loader).
Skipped when ../shared/data/gowalla is absent.
"""

import json
import math

import pytest
from conftest import shared_data

from softbpr import trainer
from softbpr.cli import main
from softbpr.config import load

SMOKE = ["--epochs", "2", "--eval-every", "1", "--max-batches", "2", "--gen-pretrain-epochs", "1",
         "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def gowalla():
    """(data path, its split), loaded once with the same data config the CLI resolves."""
    path = str(shared_data("gowalla"))
    cfg = load(overrides={"data": path}).data
    return path, cfg, trainer.load_split(cfg, lambda s: None)


@pytest.fixture
def cli_on_gowalla(gowalla, monkeypatch, tmp_path):
    path, cfg, split = gowalla
    real = trainer.load_split
    monkeypatch.setattr(trainer, "load_split",
                        lambda c, log=print: split if c == cfg else real(c, log))

    def run(*args):
        out = tmp_path / "run"
        assert main(["train", "--data", path, *SMOKE, *args, "--out", str(out)]) == 0
        return out
    return run


# per sampler: figures it adds to every history row (besides the trainer's own)
SAMPLER_FIELDS = {"mixgcf": {"neg_score", "cand_score"}, "dns": {"neg_score", "cand_score"},
                  "irgan": {"neg_score", "neg_prob", "gen_phase_seconds"},
                  "advir": {"neg_score", "neg_prob", "gen_phase_seconds"}}


@pytest.mark.parametrize("args,model,sampler", [
    (["--preset", "mixgcf"], "lightgcn", "mixgcf"),
    (["--preset", "irgan"], "lightgcn", "irgan"),
    (["--preset", "advir"], "lightgcn", "advir"),
    (["--model", "ngcf", "--preset", "dns"], "ngcf", "dns"),
], ids=["lightgcn-mixgcf", "lightgcn-irgan", "lightgcn-advir", "ngcf-dns"])
def test_baseline_smoke_run_on_gowalla(cli_on_gowalla, capsys, args, model, sampler):
    out = cli_on_gowalla(*args)
    assert "test recall@50" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model"]["name"], cfg["sampler"]["name"]) == (model, sampler)
    assert cfg["train"]["max_batches"] == 2

    res = json.loads((out / "result.json").read_text())
    assert res["dataset"] == "gowalla" and res["best_epoch"] in (1, 2)
    for k in ("recall@50", "ndcg@50"):
        assert math.isfinite(res["test"][k]) and 0.0 <= res["test"][k] <= 1.0, (k, res["test"])

    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert math.isfinite(r["loss"]) and r["sample_seconds"] > 0
        assert "ndcg@50" in r["valid"] and r["eval_seconds"] > 0  # evaluated every epoch
        missing = SAMPLER_FIELDS[sampler] - set(r)
        assert not missing, (r["epoch"], missing)
    if sampler in ("irgan", "advir"):
        # G pre-trains once before epoch 1 and trains once between the two epochs (the
        # trainer's on_epoch_start hook), each capped at 2 batches
        assert "gen_pretrain_seconds" in rows[0] and "gen_pretrain_seconds" not in rows[1]
        assert "gen_reward" not in rows[0] and math.isfinite(rows[1]["gen_reward"])
        assert math.isfinite(rows[1]["gen_loss"]) and 0 < rows[1]["neg_prob"] <= 1
    assert (out / "model.pt").stat().st_size > 0 and (out / "embeddings.npz").exists()
