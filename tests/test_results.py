"""Every committed table in docs/results regenerates from the committed result files.

Each case is the `softbpr report` command written beside the table in docs/results/README.md
(run on the committed `*-results.jsonl` copies of the sweeps' results); the regenerated CSV
must equal the committed one byte for byte, so a table can neither drift from its data nor be
edited by hand.
"""

import json
from pathlib import Path

import pytest

from softbpr.report import report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

CASES = [  # (committed table, its result files, report options)
    ("presets", ["presets-results.jsonl"], {}),
    ("table2-fixed", ["gan-results.jsonl", "presets-results.jsonl"], {"rows_by": ("method",)}),
    ("gan-temperature", ["gan-results.jsonl"],
     {"rows_by": ("method", "temperature"), "proposed": None}),
    ("fig5-tmall", ["fig5-tmall-results.jsonl"],
     {"rows_by": ("method", "pool_size"), "proposed": None}),
    ("fig3cd-tmall", ["fig3cd-tmall-results.jsonl"],
     {"rows_by": ("method", "alpha"), "proposed": None}),
    ("fig6-ngcf-ml100k", ["fig6-ngcf-results.jsonl"], {"rows_by": ("method",)}),
    ("gpu/gowalla-ml1m", ["gpu/gowalla-ml1m-results.jsonl"], {}),
    ("reg-probe", ["reg-probe-results.jsonl", "presets-results.jsonl"],
     {"rows_by": ("method", "reg"), "proposed": None}),
    ("table2-tuned", ["table2-tuned-results.jsonl"], {"rows_by": ("method",)}),
    ("new-methods-untuned", ["new-methods-untuned-results.jsonl"],
     {"rows_by": ("variant",), "proposed": None}),
    ("table2-tuned-all", ["table2-tuned-all-results.jsonl",
                          "table2-tuned-inbatch-l2fix-results.jsonl"], {"rows_by": ("method",)}),
    ("table2-tuned-tmall", ["table2-tuned-tmall-results.jsonl"], {"rows_by": ("method",)}),
    ("table2-tuned-tmall-all", ["table2-tuned-tmall-all-results.jsonl"],
     {"rows_by": ("method",)}),
    ("table2-tuned-taobao", ["table2-tuned-taobao-results.jsonl"], {"rows_by": ("method",)}),
    ("table2-tuned-tmall-stage2", ["table2-tuned-tmall-results.jsonl",
                                   "table2-tuned-tmall-stage2-results.jsonl"],
     {"rows_by": ("method",)}),
    ("table2-tuned-ml100k-stage2", ["table2-tuned-all-results.jsonl",
                                    "table2-tuned-inbatch-l2fix-results.jsonl",
                                    "table2-tuned-ml100k-stage2-results.jsonl",
                                    "table2-tuned-ml100k-stage2-new-results.jsonl",
                                    "table2-tuned-gansgd-results.jsonl"],
     {"rows_by": ("method",)}),
    ("logq-reg-tmall", ["logq-reg-tmall-results.jsonl"],
     {"rows_by": ("method", "reg"), "proposed": None}),
    ("table2-tuned-inbatch-prefix", ["table2-tuned-inbatch-prefix-results.jsonl"],
     {"rows_by": ("method",), "proposed": None}),
    ("dnsmn-m-tmall", ["dnsmn-m-tmall-results.jsonl"],
     {"rows_by": ("method", "n_negatives"), "proposed": None}),
    ("table2-tuned-taobao-all", ["table2-tuned-taobao-results.jsonl",
                                 "table2-tuned-taobao-mixgcf-results.jsonl"], {"rows_by": ("method",)}),
    ("inbatch-drop", ["inbatch-drop-results.jsonl"],
     {"rows_by": ("method", "in_batch_duplicates"), "proposed": None}),
    ("soften-bsl", ["soften-bsl-results.jsonl"],
     {"rows_by": ("soften", "tau"), "proposed": None}),
    ("sl-negatives", ["sl-negatives-results.jsonl"],
     {"rows_by": ("n_negatives", "tau"), "proposed": None}),
    ("figs-ml100k", ["figs-ml100k-results.jsonl"],
     {"rows_by": ("method", "pool_size"), "proposed": None}),
    ("figs-tmall", ["figs-tmall-results.jsonl"],
     {"rows_by": ("method", "pool_size"), "proposed": None}),
    ("fig3cd-ml100k", ["fig3cd-ml100k-results.jsonl"],
     {"rows_by": ("method", "alpha"), "proposed": None}),
    ("fig6-ngcf-tuned-ml100k", ["fig6-ngcf-tuned-ml100k-results.jsonl"],
     {"rows_by": ("method",), "proposed": None}),
    ("fig6-ngcf-tuned-tmall", ["fig6-ngcf-tuned-tmall-results.jsonl"],
     {"rows_by": ("method",), "proposed": None}),
    ("table2-tuned-tmall-bslbatch", ["table2-tuned-tmall-bslbatch-results.jsonl"],
     {"rows_by": ("method",), "proposed": None}),
    ("table2-tuned-gansgd", ["table2-tuned-gansgd-results.jsonl"],
     {"rows_by": ("method",), "proposed": None}),
    ("table2-tuned-tmall-gansgd", ["table2-tuned-tmall-gansgd-results.jsonl"],
     {"rows_by": ("method",), "proposed": None}),
    ("table2-tuned-tmall-final", ["table2-tuned-tmall-all-results.jsonl",
                                  "table2-tuned-tmall-inbatch-results.jsonl",
                                  "table2-tuned-tmall-logq-results.jsonl",
                                  "table2-tuned-tmall-bslbatch-results.jsonl",
                                  "table2-tuned-tmall-stage2-results.jsonl",
                                  "table2-tuned-tmall-stage2-new-results.jsonl",
                                  "table2-tuned-tmall-gansgd-results.jsonl"],
     {"rows_by": ("method",)}),
    ("table2-tuned-taobao-new", ["table2-tuned-taobao-results.jsonl",
                                 "table2-tuned-taobao-mixgcf-results.jsonl",
                                 "table2-tuned-taobao-ahns-results.jsonl"],
     {"rows_by": ("method",)}),
    ("fig6-ngcf-tmall-reg", ["fig6-ngcf-tmall-reg-results.jsonl"],
     {"rows_by": ("method", "reg"), "proposed": None}),
    ("gowalla-cpu", ["gowalla-cpu-results.jsonl"], {"rows_by": ("method",), "proposed": None}),
    ("lambda-tau", ["lambda-tau-results.jsonl"],
     {"rows_by": ("method", "alpha", "reg"), "proposed": None}),
]


@pytest.mark.parametrize("name,files,opts", CASES, ids=[c[0] for c in CASES])
def test_committed_table_regenerates(tmp_path, name, files, opts):
    committed = RESULTS / f"{name}.csv"
    if not committed.exists():
        pytest.skip(f"{committed} is not committed (yet)")
    _, written = report([RESULTS / f for f in files], tmp_path / "t", **opts)
    csv = next(p for p in written if p.suffix == ".csv")
    assert csv.read_text() == committed.read_text()


def _bench(name: str):
    """bench/<name>.py as a module (the bench scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_equal_time_reads_unfinished_runs_and_epoch_marks(capsys, tmp_path):
    """bench/equal_time.py on a run still going (no result.json): best-so-far validation by each
    epoch (or minute) mark, "–" past its last validation and for the test metrics."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"batch_size": 16, "lr": 0.01}}))
    hist = [{"epoch": e, "train_seconds": 30.0, "eval_seconds": 0.0,
             **({"valid": {"recall@20": v}} if v is not None else {})}
            for e, v in [(1, None), (2, 0.1), (3, None), (4, 0.3), (5, None), (6, 0.2)]]
    # a run killed mid-write leaves a torn last line, which the run directory's reader skips
    (run / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist)
                                       + '{"epoch": 7, "tra')
    _bench("equal_time").main([str(run), "--epochs", "1,3,4,6,8"])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row == "| r | 16 | 0.01 | 6 | 30.0 | nan | 0.1000 | 0.3000 | 0.3000 | – | – | – |"
    _bench("equal_time").main([str(run), "--marks", "1.5,2,3.5"])  # 0.5 min an epoch
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row == "| r | 16 | 0.01 | 6 | 30.0 | 0.1000 | 0.3000 | – | – | – |"
    # a run in its first epoch (empty history), or killed writing its first line
    for text in ("", '{"epoch": 1, "tra'):
        (run / "history.jsonl").write_text(text)
        _bench("equal_time").main([str(run), "--epochs", "1,2"])
        row = capsys.readouterr().out.strip().splitlines()[-1]
        assert row == "| r | 16 | 0.01 | 0 | – | – | – | – | – |"


def test_gowalla_cpu_epoch_table_regenerates(capsys, tmp_path):
    """docs/results/README.md's Gowalla-on-the-CPU table by epoch is bench/equal_time.py's
    output on the committed runs tarball."""
    import tarfile

    tar = RESULTS / "gowalla-cpu-runs.tar.gz"
    if not tar.exists():
        pytest.skip(f"{tar} is not committed (yet)")
    with tarfile.open(tar) as tf:
        tf.extractall(tmp_path, filter="data")
    runs = sorted(str(p) for p in (tmp_path / "gowalla-cpu" / "runs").iterdir())
    _bench("equal_time").main([*runs, "--epochs", "10,20,30,50,100,115,200,300,400"])
    lines = capsys.readouterr().out.strip().splitlines()
    doc = (RESULTS / "README.md").read_text().splitlines()
    assert len(lines) == 5 and all(ln in doc for ln in lines)


def test_gowalla_large_batch_table_regenerates(capsys):
    """docs/large-data.md's equal-wall-time table is bench/equal_time.py's output on the
    committed run directories."""
    runs = [RESULTS / "gowalla-large-batch" / r for r in ("b2048", "b16384")]
    if not all((r / "history.jsonl").exists() for r in runs):
        pytest.skip("docs/results/gowalla-large-batch is not committed (yet)")
    _bench("equal_time").main([str(r) for r in runs])
    table = capsys.readouterr().out.strip().splitlines()
    doc = (ROOT / "docs" / "large-data.md").read_text()
    assert len(table) == 4 and all(line in doc for line in table)


def test_tune_vs_grid_tables_regenerate(capsys):
    """docs/results/tune-ml100k.md's tables are bench/tune_vs_grid.py's output on the committed
    result files, line for line."""
    files = [RESULTS / f"tune-ml100k{s}-results.jsonl" for s in ("", "-grid")]
    if not all(f.exists() for f in files):
        pytest.skip("the tune-ml100k results are not committed (yet)")
    _bench("tune_vs_grid").main([str(f) for f in files])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    doc = (RESULTS / "tune-ml100k.md").read_text().splitlines()
    assert len(lines) > 5 and all(ln in doc for ln in lines)


@pytest.mark.parametrize("runs", ["figs-ml100k-runs.tar.gz", "figs-tmall-runs.tar.gz",
                                  "fig6-ngcf-tuned-ml100k-runs.tar.gz",
                                  "fig6-ngcf-tuned-tmall-runs.tar.gz",
                                  "fig6-ngcf-tmall-reg-runs.tar.gz",
                                  "gowalla-cpu-runs.tar.gz"])
def test_curve_tables_regenerate(capsys, runs):
    """The Figure 3a-b / 4 curve tables in docs/results/README.md are bench/curves.py's output
    on the committed run directories, line for line."""
    if not (RESULTS / runs).exists():
        pytest.skip(f"{runs} is not committed (yet)")
    _bench("curves").main([str(RESULTS / runs)])
    lines = capsys.readouterr().out.strip().splitlines()
    doc = (RESULTS / "README.md").read_text().splitlines()
    assert len(lines) > 3 and all(ln in doc for ln in lines)


# result files from before run histories were committed (the untuned studies of earlier
# sessions; their run directories are gone): docs/results/README.md says so beside each.
WITHOUT_HISTORIES = {"fig3cd-tmall", "fig5-tmall", "fig6-ngcf", "gan", "lambda-tau",
                     "new-methods-untuned", "presets", "reg-probe"}


def test_every_reported_run_has_its_history_committed():
    """Every row of every other docs/results/*-results.jsonl names a run whose history.jsonl is
    in a committed *-runs.tar.gz, so each per-epoch claim can be checked."""
    import json
    import tarfile

    have = set()
    for t in RESULTS.glob("*.tar.gz"):
        with tarfile.open(t) as tf:
            have |= {Path(n).parent.name for n in tf.getnames() if n.endswith("/history.jsonl")}
    missing = {}
    for f in sorted(RESULTS.glob("*-results.jsonl")):
        if f.name.removesuffix("-results.jsonl") in WITHOUT_HISTORIES:
            continue
        runs = [Path(json.loads(ln)["run"]).name for ln in f.read_text().splitlines() if ln]
        if lost := [r for r in runs if r not in have]:
            missing[f.name] = lost[:3] + ([f"... {len(lost)} in all"] if len(lost) > 3 else [])
    assert not missing


def test_collect_packs_the_matching_rows_and_their_runs(tmp_path, tiny_folder):
    """bench/collect.py: the rows of several sweep folders that match --only, and exactly their
    run directories without heavy files; refuses to replace its outputs without --overwrite."""
    import json
    import tarfile

    from softbpr.sweep import expand, load_sweep, read_rows, run_sweep

    for name, lr in (("a", "[0.01, 0.02]"), ("b", "[0.03]")):
        f = tmp_path / f"{name}.toml"
        f.write_text(f'[sweep]\nname = "{name}"\nout = "{tmp_path / name}"\nseeds = [1]\n'
                     f'keep = ["model.pt"]\n[base]\ndata = "{tiny_folder}"\ndim = 8\n'
                     f"layers = 1\nepochs = 1\nbatch_size = 64\n[grid]\nlr = {lr}\n")
        sw = load_sweep(f)
        run_sweep(sw, expand(sw), log=lambda m: None)
    out = tmp_path / "docs" / "x"
    collect = _bench("collect")
    collect.main([str(tmp_path / "a"), str(tmp_path / "b"), "--only", "lr=0.02",
                  "--out", str(out)])
    rows = read_rows(Path(f"{out}-results.jsonl"))
    assert [r["config"]["lr"] for r in rows] == [0.02]
    with tarfile.open(f"{out}-runs.tar.gz") as tf:
        names = tf.getnames()
    run = Path(rows[0]["run"]).name
    assert f"a/runs/{run}/history.jsonl" in names and f"a/runs/{run}/config.json" in names
    assert all(f"/runs/{run}/" in n for n in names) and not any("model.pt" in n for n in names)
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        collect.main([str(tmp_path / "a"), "--out", str(out)])
    collect.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--overwrite"])
    assert len(read_rows(Path(f"{out}-results.jsonl"))) == 3
    assert json.loads(Path(f"{out}-results.jsonl").read_text().splitlines()[2])["config"][
        "lr"] == 0.03
    collect.main([str(tmp_path / "a"), str(tmp_path / "b"), "--only", "lr=0.01", "--only",
                  "lr=0.03", "--out", str(out), "--overwrite"])  # a key twice: either value
    assert [r["config"]["lr"] for r in read_rows(Path(f"{out}-results.jsonl"))] == [0.01, 0.03]


@pytest.mark.parametrize("name", ["table2-tuned-tmall", "table2-tuned-taobao",
                                  "table2-tuned-tmall-stage2", "table2-tuned-tmall-inbatch",
                                  "table2-tuned-inbatch-l2fix", "table2-tuned-tmall-logq",
                                  "table2-tuned-ml100k-stage2", "dnsmn-m-tmall",
                                  "table2-tuned-taobao-mixgcf", "logq-reg-tmall",
                                  "gowalla-cpu", "table2-tuned-tmall-bslbatch",
                                  "table2-tuned-gansgd", "table2-tuned-taobao-ahns",
                                  "table2-tuned-tmall-gansgd", "table2-tuned-ml100k-stage2-new",
                                  "table2-tuned-tmall-stage2-new"])
def test_check_tables_regenerate(capsys, tmp_path, name):
    """<name>-check.md (best epoch vs cap, false-negative rate, s/epoch of every reported run)
    is bench/study_check.py's output on the committed results and run histories."""
    import tarfile

    files = [RESULTS / f"{name}{s}" for s in ("-check.md", "-results.jsonl", "-runs.tar.gz")]
    if not all(f.exists() for f in files):
        pytest.skip(f"{name}: check, results or runs not committed (yet)")
    with tarfile.open(files[2]) as tf:
        tf.extractall(tmp_path, filter="data")
        tops = sorted({m.name.split("/")[0] for m in tf.getmembers()})
    _bench("study_check").main([str(tmp_path / t) for t in tops], str(files[1]))
    assert capsys.readouterr().out.splitlines() == files[0].read_text().splitlines()


def test_check_time_limited_run_within_its_patience_is_not_converged(capsys, tmp_path):
    """A run the budget cut off while its early stop was still waiting (patience > 0, fewer than
    patience evaluations after its best) is not called converged, however early its best."""
    import tarfile

    tar, res = RESULTS / "gowalla-cpu-runs.tar.gz", RESULTS / "gowalla-cpu-results.jsonl"
    if not (tar.exists() and res.exists()):
        pytest.skip("gowalla-cpu results or runs not committed (yet)")
    with tarfile.open(tar) as tf:
        tf.extractall(tmp_path, filter="data")
    runs = tmp_path / "gowalla-cpu" / "runs"
    (dns,) = [d for d in runs.iterdir() if d.name.startswith("dns_")]
    for patience, want in [(0, "yes"), (100, "yes"), (460, "NO")]:  # best 30 of 489 epochs
        cfg = json.loads((dns / "config.json").read_text())
        cfg["train"].update(patience=patience, eval_every=1)
        (dns / "config.json").write_text(json.dumps(cfg))
        _bench("study_check").main([str(tmp_path / "gowalla-cpu")], str(res))
        (row,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| dns")]
        assert row.split(" | ")[6] == want, (patience, row)


def test_a_larger_epoch_cap_gives_the_same_early_stopped_run():
    """docs/results/README.md says Hard-BPR's late-peaking ml-100k runs (best epoch past 80% of
    the 300-epoch cap, stopped on their patience) would be the same under a larger cap: the
    committed rerun of seed 4 with a 400-epoch cap has the same best epoch, epochs run and
    metrics as the reported run."""
    from softbpr.sweep import read_rows

    big, ref = RESULTS / "hardbpr-cap400-results.jsonl", \
        RESULTS / "table2-tuned-ml100k-stage2-new-results.jsonl"
    if not (big.exists() and ref.exists()):
        pytest.skip("the cap-400 rerun or the stage-2 results are not committed (yet)")
    (a,) = read_rows(big)
    (b,) = [r for r in read_rows(ref) if r["method"] == "hard-bpr" and r["seed"] == 4]
    assert a["config"]["epochs"] == 400 and b["config"]["epochs"] == 300
    assert (a["best_epoch"], a["epochs"], a["valid"], a["test"]) == \
        (b["best_epoch"], b["epochs"], b["valid"], b["test"])
    assert b["best_epoch"] > 0.8 * 300  # the case the claim is about


@pytest.mark.parametrize("ds,name,rows,pattern", [
    ("ml-100k", ("table2-tuned-all-results.jsonl,table2-tuned-inbatch-l2fix-results.jsonl,"
     "table2-tuned-gansgd-results.jsonl"), "method", r"[\w-]+"),
    ("tmall", ("table2-tuned-tmall-all-results.jsonl,table2-tuned-tmall-inbatch-results.jsonl,"
     "table2-tuned-tmall-logq-results.jsonl,table2-tuned-tmall-bslbatch-results.jsonl,"
     "table2-tuned-tmall-gansgd-results.jsonl,tmall-advirsgd-point-results.jsonl"), "method",
     r"[\w-]+"),
    ("taobao", ("table2-tuned-taobao-results.jsonl,table2-tuned-taobao-mixgcf-results.jsonl,"
     "table2-tuned-taobao-ahns-results.jsonl"), "method", r"[\w-]+"),
    ("ml-100k", "sl-negatives-results.jsonl", "n_negatives,tau", r"\d+/[\d.]+"),
    ("ml-100k", "soften-bsl-results.jsonl", "soften,tau", r"0(?:\.\d+)?/[\d.]+"),
    ("ml-100k", "inbatch-drop-results.jsonl", "method,in_batch_duplicates",
     r"sl-batch(?:-logq)?/(?:drop|keep)"),
    ("ml-100k", "figs-ml100k-results.jsonl", "method,pool_size", r"(?:rns|dns|sdns|mixgcf)/\d+"),
    ("tmall", "figs-tmall-results.jsonl", "method,pool_size", r"(?:rns|dns|sdns|mixgcf)/\d+"),
    ("ml-100k", "fig3cd-ml100k-results.jsonl", "method,alpha", r"sdns-mix/[\d.]+"),
    ("ml-100k", "fig6-ngcf-tuned-ml100k-results.jsonl", "model,method",
     r"ngcf/(?:rns|dns|sdns|mixgcf)"),
    ("tmall", "fig6-ngcf-tuned-tmall-results.jsonl", "model,method",
     r"ngcf/(?:rns|dns|sdns|mixgcf)"),
    ("tmall", "fig6-ngcf-tmall-reg-results.jsonl,fig6-ngcf-tuned-tmall-results.jsonl",
     "method,reg", r"(?:dns|sdns)/0\.\d+"),
    ("tmall", ("table2-tuned-tmall-results.jsonl,table2-tuned-tmall-stage2-results.jsonl,"
     "table2-tuned-tmall-gansgd-results.jsonl,table2-tuned-tmall-all-results.jsonl,"
     "table2-tuned-tmall-stage2-new-results.jsonl"), "method,study",
     r"[\w-]+/table2-tuned(?:-tmall-stage2)?"),
    ("ml-100k", ("table2-tuned-all-results.jsonl,table2-tuned-ml100k-stage2-results.jsonl,"
     "table2-tuned-ml100k-stage2-new-results.jsonl"), "method,study",
     r"[\w-]+/table2-tuned(?:-ml100k-stage2)?"),
    ("ml-100k", "inbatch-l2-results.jsonl,table2-tuned-inbatch-prefix-results.jsonl",
     "method,study", r"(?:sl|bsl)-batch(?:-logq)?/(?:inbatch-l2-ml100k|table2-tuned)"),
])
def test_paired_tests_regenerate(capsys, ds, name, rows, pattern):
    """The paired t-tests quoted in docs/results/README.md ("<dataset> A vs B: ...", A and B a
    method or, for rows keyed by config values, "v1/v2" such as SL's M/τ or a method/H) are
    bench/paired.py's output on the committed results (`name`: one file, or several joined by
    commas, read together)."""
    import re

    doc = (RESULTS / "README.md").read_text()
    lines = re.findall(rf"^{re.escape(ds)} {pattern} vs {pattern}: .*$", doc, flags=re.MULTILINE)
    files = [RESULTS / n for n in name.split(",")]
    if not all(f.exists() for f in files) or not lines:
        pytest.skip(f"{name}: no paired tests quoted with their results committed")
    pairs = [re.match(rf"{re.escape(ds)} (\S+) vs (\S+):", ln).groups() for ln in lines]
    also = [a for f in files[1:] for a in ("--also", str(f))]
    _bench("paired").main([str(files[0]), *also, "--rows", rows,
                           *[f"{a}:{b}" for a, b in pairs]])
    assert capsys.readouterr().out.strip().splitlines() == lines


def test_paired_says_no_test_with_one_seed_and_none_in_common(capsys, tmp_path):
    """With one seed there is no paired test: the line says so instead of "p=nan"; with no seed
    in common it says that instead of dividing by zero."""
    name = RESULTS / "fig6-ngcf-tuned-tmall-results.jsonl"
    if not name.exists():
        pytest.skip(f"{name} is not committed")
    rows = [json.loads(ln) for ln in name.read_text().splitlines() if ln.strip()]
    one = tmp_path / "one.jsonl"  # seed 1 only
    one.write_text("".join(json.dumps(r) + "\n" for r in rows if r["seed"] == 1))
    _bench("paired").main([str(one), "--rows", "model,method", "ngcf/sdns:ngcf/dns"])
    line = capsys.readouterr().out.strip()
    assert line.startswith("tmall ngcf/sdns vs ngcf/dns: recall@50 0.0724 vs 0.0529 (+36.7%, "
                           "no test, n=1)")
    apart = tmp_path / "apart.jsonl"  # DNS on other seeds than SDNS
    apart.write_text("".join(json.dumps({**r, "seed": r["seed"] + 100 * (r["method"] == "dns")})
                             + "\n" for r in rows if r["seed"] == 1))
    _bench("paired").main([str(apart), "--rows", "model,method", "ngcf/sdns:ngcf/dns"])
    assert capsys.readouterr().out.strip() == (
        "tmall ngcf/sdns vs ngcf/dns: recall@50 no seed in common; ndcg@50 no seed in common")


def test_paired_names_an_unknown_row():
    """A row name that is not in the results (a typo, "0.0" for "0") stops with the rows there,
    instead of printing nothing."""
    name = RESULTS / "table2-tuned-all-results.jsonl"
    if not name.exists():
        pytest.skip(f"{name} is not committed")
    with pytest.raises(SystemExit, match=r"no row 'sdsn' .*rows by method: .*sdns"):
        _bench("paired").main([str(name), "sdsn:dns"])


def test_committed_points_keep_their_identity():
    """Every committed row of the Table 2 study names a point that configs/table2-tuned.toml
    still expands to: a change to the presets (the keys a preset adds are part of a point's
    identity) or to the grid must not rename finished runs, or `sweep` and `sweep --best` would
    train them again instead of finding them."""
    from softbpr.sweep import expand, load_sweep, read_rows

    files = [RESULTS / n for n in ("table2-tuned-results.jsonl", "table2-tuned-all-results.jsonl",
                                   "table2-tuned-gansgd-results.jsonl",
                                   "table2-tuned-tmall-gansgd-results.jsonl",
                                   "table2-tuned-taobao-ahns-results.jsonl")]
    rows = [r for f in files if f.exists() for r in read_rows(f)
            if r.get("study") == "table2-tuned"]
    if not rows:
        pytest.skip("no Table 2 results committed (yet)")
    ids = {s.point_id for s in expand(load_sweep(ROOT / "configs" / "table2-tuned.toml"))}
    lost = sorted({(r["method"], r["point_id"]) for r in rows if r["point_id"] not in ids})
    assert not lost, f"points no longer expanded: {lost[:5]}"
