"""End to end through `softbpr train`: every baseline preset with LightGCN and NGCF, their flags,
an NGCF checkpoint re-evaluated by `softbpr evaluate`, and (slow) each baseline on Gowalla."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_data

from softbpr.cli import main
from softbpr.config import ConfigError, load
from softbpr.losses import AdvBPR, build_loss
from softbpr.samplers import build_sampler


def test_presets_and_flags_of_the_baselines():
    for preset, sampler, lossname in [("mixgcf", "mixgcf", "bpr"), ("irgan", "irgan", "bpr"),
                                      ("advir", "advir", "adv_bpr")]:
        e = load(overrides={"preset": preset})
        assert (e.sampler.name, e.loss.name, e.method) == (sampler, lossname, preset)
    e = load(overrides={"preset": "advir", "eps": 0.2, "adv_weight": 2, "temperature": 0.5})
    loss = build_loss(e.loss)
    assert isinstance(loss, AdvBPR) and (loss.eps, loss.weight) == (0.2, 2.0)
    assert build_sampler(e.sampler).temperature == 0.5
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        load(overrides={"temprature": 1.0})
    with pytest.raises(ConfigError, match="no effect with loss 'adv_bpr'"):
        load(overrides={"preset": "advir", "alpha": 0.5})
    with pytest.raises(ConfigError, match="temperature"):
        load(overrides={"preset": "irgan", "temperature": 0.0})


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
