"""Δ diagnostics (histogram on device, quantiles, recorded per epoch) and the figures drawn from
run directories: labels, every figure kind, the CLI after a quick sweep, a clear error without
matplotlib."""

import json
import sys

import numpy as np
import pytest
import torch

from softbpr import plots
from softbpr.cli import main
from softbpr.config import load
from softbpr.diagnostics import DELTA_BINS, bin_counts, delta_edges, hist_quantiles
from softbpr.diagnostics import summarize_delta as summarize
from softbpr.trainer import fit

# ------------------------------------------------------------------------------- diagnostics


def test_bin_counts_match_numpy_and_keep_one_in_the_last_bin():
    x = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    x[:3] = torch.tensor([0.0, 1.0, 0.999])
    counts = bin_counts(x, delta_edges("cpu", 20))
    ref, _ = np.histogram(x.numpy(), bins=20, range=(0, 1))  # numpy's last bin is closed too
    assert counts.dtype == torch.float64 and counts.tolist() == ref.tolist()


def test_hist_quantiles_interpolate_inside_bins():
    assert hist_quantiles([1, 1, 1, 1], (0.25, 0.5, 1.0)) == pytest.approx([0.25, 0.5, 1.0])
    assert hist_quantiles([0, 10, 0, 0], (0.1, 0.5, 0.9)) == pytest.approx([0.275, 0.375, 0.475])
    assert all(np.isnan(hist_quantiles([0, 0], (0.5,))))
    s = summarize([0.0, 4.0, 4.0, 0.0])
    assert s["delta_hist"] == [0, 4, 4, 0] and s["delta_q50"] == pytest.approx(0.5)
    assert set(s) == {"delta_q10", "delta_q50", "delta_q90", "delta_hist"}


def test_trainer_records_delta_histogram_per_epoch(blocks):
    exp = load(overrides={"dim": 8, "layers": 1, "batch_size": 16, "epochs": 3, "eval_every": 3,
                          "patience": 0, "lr": 0.05, "topk": "2,5", "metric": "recall@5",
                          "device": "cpu", "preset": "dns"})
    run = fit(exp, split=blocks, log=lambda m: None, progress=False)
    for row in run.history:
        h = row["delta_hist"]
        assert len(h) == DELTA_BINS and sum(h) == len(blocks.train)  # every triplet once
        assert 0 <= row["delta_q10"] <= row["delta_q50"] <= row["delta_q90"] <= 1
        mid = sum((k + 0.5) / DELTA_BINS * c for k, c in enumerate(h)) / sum(h)
        assert mid == pytest.approx(row["grad_weight"], abs=0.5 / DELTA_BINS)  # mean Δ
    # epoch 1 starts from ŷ_ui ≈ ŷ_uj: Δ ≈ 0.5 sits mid-bin, so the median reads ≈ 0.5
    assert run.history[0]["delta_q50"] == pytest.approx(0.5, abs=0.5 / DELTA_BINS)


# ---------------------------------------------------------------------------------- figures


@pytest.fixture
def mpl():
    """matplotlib (the optional extra 'plots', also in 'dev'), or skip the figure test."""
    return pytest.importorskip("matplotlib")


def fake_run(root, method, pool, seed, peak, dataset="toy", epochs=12):
    """A run directory as fit + sweep write it, with a made-up validation curve."""
    exp = load(overrides={"preset": method, "pool_size": pool, "seed": seed, "epochs": epochs})
    d = root / f"{method}-H{pool}-s{seed}-{dataset}"
    d.mkdir(parents=True)
    cfg = exp.to_dict()
    (d / "config.json").write_text(json.dumps(cfg))
    rows = []
    for e in range(1, epochs + 1):
        v = peak - 0.002 * (e - 6) ** 2 + 0.001 * seed
        hist = [0] * DELTA_BINS
        hist[20 + e % 5] = 100
        rows.append({"epoch": e, "loss": 1 / e, "score_gap": 0.1 * e, "grad_weight": 0.45,
                     "neg_heldout_rate": 0.01 * pool / 16, "delta_q10": 0.4, "delta_q50": 0.45,
                     "delta_q90": 0.5, "delta_hist": hist,
                     "valid": {"recall@50": 2 * v, "ndcg@50": v}})
    (d / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "result.json").write_text(json.dumps({
        "best_epoch": 6, "valid": rows[5]["valid"], "dataset": dataset,
        "test": {"recall@50": 2 * peak + 0.001 * seed, "ndcg@50": peak + 0.001 * seed}}))
    (d / "sweep.json").write_text(json.dumps({"labels": {"dataset": dataset},
                                              "point_id": f"{method}{pool}{dataset}"}))
    return d


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "sweep"
    for seed in (1, 2):
        for ds in ("toy", "other"):
            fake_run(root, "rns", 16, seed, 0.10, ds)
            for pool, peak in ((4, 0.12), (16, 0.15), (64, 0.11)):
                fake_run(root, "dns", pool, seed, peak, ds)
                fake_run(root, "sdns", pool, seed, peak + 0.02, ds)
    return root


def test_settings_are_named_by_what_varies(runs_dir):
    runs = plots.load_runs(runs_dir)
    assert len(runs) == 28 and {r.dataset for r in runs} == {"toy", "other"}
    keys = plots.label_keys(runs)
    assert keys == ["method", "pool_size"]  # not sampler/loss/alpha: they follow the method
    sets = plots._settings(runs, keys)
    # RNS does not use H, so it is not labelled with the H the file happens to carry
    assert set(sets["toy"]) == {"RNS", "DNS H=4", "DNS H=16", "DNS H=64", "SDNS H=4",
                                "SDNS H=16", "SDNS H=64"}
    assert all(len(v) == 2 for v in sets["toy"].values())  # two seeds per setting
    best = plots.best_only(runs)
    assert {(r.config["method"], r.config["pool_size"]) for r in best} == {
        ("rns", 16), ("dns", 16), ("sdns", 16)}


def _is_png(p, min_bytes=10_000):
    data = p.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes


def test_every_figure_kind_renders(runs_dir, tmp_path, mpl):
    files = plots.plot_all(runs_dir, tmp_path / "figs", log=lambda m: None)
    assert sorted(f.name for f in files) == ["curves.png", "delta-hist.png", "diagnostics.png",
                                             "vs-H.png"]
    assert all(_is_png(f) for f in files)
    img = mpl.image.imread(tmp_path / "figs" / "curves.png")
    assert img.shape[1] > img.shape[0]  # 2 metrics x 2 datasets, legend beside
    (f,) = plots.plot_all(runs_dir, tmp_path / "figs", kinds=["delta-hist"], epoch=3,
                          only={"dataset": "toy"})
    assert f.name == "delta-hist-e3.png" and _is_png(f)
    with pytest.raises(ValueError, match="unknown plot kind"):
        plots.plot_all(runs_dir, tmp_path, kinds=["bars"])
    with pytest.raises(ValueError, match="match"):
        plots.plot_all(runs_dir, tmp_path, only={"model": "ngcf"})
    with pytest.raises(ValueError, match="match"):  # either of two values (--only twice)
        plots.plot_all(runs_dir, tmp_path, only={"model": ("ngcf", "mf")})
    runs = plots.load_runs(runs_dir)
    toy = [r for r in runs if r.dataset == "toy"]
    assert toy and [r for r in runs if plots._matches(r, {"dataset": ("nope", "toy")})] == toy


def test_quick_sweep_then_plot_from_the_cli(tmp_path, capsys, mpl):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny"  # LightGCN folder: 30 users in two taste blocks of 15 items
    data.mkdir()
    train, test = [], []
    for u in range(30):
        liked = rng.choice(np.arange(15) + 15 * (u % 2), size=10, replace=False)
        train.append(" ".join(map(str, [u, *liked[:8]])))
        test.append(" ".join(map(str, [u, *liked[8:]])))
    (data / "train.txt").write_text("\n".join(train) + "\n")
    (data / "test.txt").write_text("\n".join(test) + "\n")
    f = tmp_path / "s.toml"
    f.write_text(f"""
[sweep]
name = "mini"
out = "{tmp_path / 'out'}"
[base]
data = "{data}"
dim = 8
layers = 1
epochs = 3
eval_every = 1
patience = 0
batch_size = 64
topk = [5, 10]
metric = "ndcg@10"
device = "cpu"
[grid]
pool_size = [2, 8]
[[variants]]
preset = "dns"
[[variants]]
preset = "sdns"
""")
    assert main(["sweep", str(f)]) == 0
    assert main(["plot", str(tmp_path / "out"), "--out", str(tmp_path / "png")]) == 0
    names = {p.name for p in (tmp_path / "png").iterdir()}
    assert names == {"curves.png", "diagnostics.png", "delta-hist.png", "vs-H.png"}
    assert main(["plot", str(tmp_path / "out"), "--kind", "vs-alpha"]) == 0  # α: one value
    assert (tmp_path / "out" / "plots" / "vs-alpha.png").exists()


def test_missing_matplotlib_is_a_clear_error(runs_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError, match=r"softbpr\[plots\]"):
        plots.plot_curves(plots.load_runs(runs_dir), runs_dir / "x.png")
    assert main(["plot", str(runs_dir)]) == 6  # cli.EXIT_ENV: a missing optional package
    assert "pip install 'softbpr[plots]'" in capsys.readouterr().err


def test_plot_bad_inputs_are_one_line(tmp_path, capsys, mpl):
    run = fake_run(tmp_path / "s", "sdns", 16, 1, 0.1)
    (tmp_path / "afile.txt").write_text("mine")
    assert main(["plot", str(run), "--out", str(tmp_path / "afile.txt")]) == 5  # cli.EXIT_FILE
    err = capsys.readouterr().err
    assert "afile.txt is a file; give --out a folder" in err and "--overwrite" not in err
    assert (tmp_path / "afile.txt").read_text() == "mine"
    # an epoch without a Δ histogram: refused, naming the epochs there are (nothing drawn)
    assert main(["plot", str(run), "--epoch", "99", "--out", str(tmp_path / "f")]) == 2
    assert "--epoch 99: no run has a Δ histogram of that epoch; choose among epochs 1-12" in (
        capsys.readouterr().err)
    assert not (tmp_path / "f").exists()
    # a damaged history row names file:line; an empty history names the run
    hist = run / "history.jsonl"
    lines = hist.read_text().splitlines()
    hist.write_text("\n".join([lines[0], json.dumps({**json.loads(lines[1]), "valid": 5}),
                               *lines[2:]]) + "\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "f")]) == 4  # cli.EXIT_DATA
    err = capsys.readouterr().err
    assert f"{hist}:2: damaged history row: \"valid\" is not an object" in err
    assert len(err.strip().splitlines()) == 1
    hist.write_text("")
    assert main(["plot", str(run), "--kind", "diagnostics", "--out", str(tmp_path / "f")]) == 2
    assert f"{hist}: empty, no epoch finished yet" in capsys.readouterr().err
