"""Table 2 report from a hand-made results.jsonl with known numbers: the configuration is chosen
on validation (never test), the strongest baseline is underlined, the improvement row and the
paired t-test over seeds are right."""

import csv
import io
import json

import pytest
from scipy.stats import ttest_rel

from softbpr.cli import main
from softbpr.report import (
    build_table,
    label,
    load_results,
    paired_test,
    select,
    to_csv,
    to_markdown,
)


def row(method, ds, point, seed, valid, recall, ndcg, **cfg):
    return {"study": "t", "run": f"runs/{method}-{ds}-{point}-s{seed}", "point_id": point,
            "point": {"preset": method, **cfg}, "dataset": ds, "method": method,
            "model": "lightgcn", "seed": seed,
            "config": {"method": method, "metric": "ndcg@50", "seed": seed, **cfg},
            "best_epoch": 10, "valid": {"ndcg@50": valid, "recall@50": valid},
            "test": {"recall@50": recall, "ndcg@50": ndcg}, "seconds": 1.0, "status": "ok"}


SEEDS = (1, 2, 3)


def results() -> list[dict]:
    rows = []
    for s, d in zip(SEEDS, (0.0, 0.01, 0.02)):
        # dataset A: DNS has two grid points; "hi-valid" wins on valid, "hi-test" only on test
        rows.append(row("dns", "A", "hi-valid", s, 0.30 + d, 0.20 + d, 0.10 + d, lr=1e-3))
        rows.append(row("dns", "A", "hi-test", s, 0.20 + d, 0.90 + d, 0.90 + d, lr=5e-3))
        rows.append(row("rns", "A", "r", s, 0.10, 0.15 + d, 0.12 + d))
        rows.append(row("sdns", "A", "s", s, 0.40, 0.22 + 2 * d, 0.13 + d, alpha=0.9))
        # dataset B: RNS is the strongest baseline on NDCG, DNS on Recall
        rows.append(row("dns", "B", "b", s, 0.3, 0.50 + d, 0.20 + d))
        rows.append(row("rns", "B", "r", s, 0.3, 0.40 + d, 0.30 + d))
        rows.append(row("sdns", "B", "s", s, 0.3, 0.55 + d, 0.33 + d, alpha=0.9))
        rows.append(row("irgan", "B", "g", s, 0.1, 0.10, 0.10))  # failed runs are ignored:
    rows.append({**row("sdns", "B", "x", 1, 0.99, 0.99, 0.99), "status": "diverged"})
    return rows


@pytest.fixture
def res_file(tmp_path):
    f = tmp_path / "results.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in results()) + '{"torn": ')
    return f


def test_choice_is_by_valid_never_by_test(res_file):
    ch = select(load_results(res_file))
    assert ch[(("dns",), "A")].point_id == "hi-valid"  # although "hi-test" has test 0.9
    assert ch[(("dns",), "A")].n_points == 2 and ch[(("dns",), "A")].seeds == SEEDS
    assert ch[(("sdns",), "B")].point_id == "s"  # the diverged 0.99 row is not a result
    assert ch[(("dns",), "A")].score == pytest.approx(0.31)


def test_table2_layout_strongest_baseline_and_improvement(res_file):
    t = build_table(load_results(res_file))
    md = to_markdown(t)
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| Method | A Recall@50 | A NDCG@50 | B Recall@50 | B NDCG@50 |"
    body = {ln.split(" | ")[0][2:]: ln.split(" | ")[1:] for ln in lines[1:5]}
    # paper order, proposed last
    assert list(body)[:4] == ["RNS", "IRGAN", "DNS", "SDNS"]
    assert body["DNS"][0] == "<u>0.2100 ± 0.0100</u>"  # A recall: DNS(hi-valid) 0.21 > RNS 0.16
    assert body["DNS"][1] == "0.1100 ± 0.0100"  # A ndcg: RNS 0.13 > DNS 0.11
    assert body["RNS"][1] == "<u>0.1300 ± 0.0100</u>"
    assert body["DNS"][2] == "<u>0.5100 ± 0.0100</u>" and body["RNS"][3].startswith("<u>0.3100")
    assert body["IRGAN"][0] == "–" and body["IRGAN"][2] == "0.1000 ± 0.0000"
    assert not any("<u>" in c for c in body["SDNS"])
    # improvement row: (SDNS - strongest) / strongest, paired t-test over the 3 seeds
    imp = lines[5]
    assert imp.startswith("| SDNS vs <u>best baseline</u> |")
    rel, p, n = t.improvement[("A", "recall@50")]
    assert rel == pytest.approx((0.24 - 0.21) / 0.21) and n == 3
    assert p == pytest.approx(ttest_rel([0.22, 0.24, 0.26], [0.20, 0.21, 0.22]).pvalue)
    assert f"{rel * 100:+.2f}% (p={p:.3g}, n=3)" in imp
    # the chosen configurations are listed, with the valid score they were chosen on
    assert "| DNS | A | 0.3100 | 1,2,3 | 2 | 1,2,3 | lr=0.001 |" in md


def test_paired_test_needs_two_seeds():
    a, b = {1: 0.3, 2: 0.5, 3: 0.4}, {1: 0.2, 2: 0.3, 3: 0.35}
    p, n = paired_test(a, b)
    assert n == 3 and p == pytest.approx(ttest_rel([0.3, 0.5, 0.4], [0.2, 0.3, 0.35]).pvalue)
    assert paired_test({1: 0.3}, {1: 0.2, 2: 0.1}) == (None, 1)
    assert paired_test({1: 0.3, 2: 0.4}, {3: 0.2}) == (None, 0)
    assert paired_test({1: 0.3, 2: 0.4}, {1: 0.2, 2: 0.3}) == (None, 2)  # no spread: no t


def test_one_seed_says_n_a(tmp_path):
    rows = [row("dns", "A", "d", 1, 0.3, 0.2, 0.1), row("sdns", "A", "s", 1, 0.3, 0.3, 0.2)]
    md = to_markdown(build_table(rows))
    assert "+50.00% (p n/a, n=1)" in md and "+100.00% (p n/a, n=1)" in md
    assert "| DNS | <u>0.2000</u> | <u>0.1000</u> |" in md  # no ± with one seed


def test_two_stage_selection_compares_points_on_shared_seeds():
    rows = [row("dns", "A", "p1", s, v, 0.2, 0.1) for s, v in ((1, 0.30), (2, 0.10), (3, 0.10))]
    rows.append(row("dns", "A", "p2", 1, 0.25, 0.2, 0.1))
    c = select(rows)[(("dns",), "A")]
    # on seed 1 (the only seed both have) p1 (0.30) beats p2 (0.25), although p1's mean over
    # its three seeds (0.167) is below p2's single seed; the cell then uses all of p1's seeds
    assert c.point_id == "p1" and c.seeds == (1,) and [r["seed"] for r in c.runs] == [1, 2, 3]


def test_csv_and_rows_by_other_keys(res_file):
    t = build_table(load_results(res_file), rows_by=("method", "alpha"), proposed=None)
    assert t.proposed is None and not t.improvement
    rows = list(csv.DictReader(io.StringIO(to_csv(build_table(load_results(res_file))))))
    a = [r for r in rows
         if r["row"] == "SDNS" and r["dataset"] == "A" and r["metric"] == "recall@50"]
    assert len(a) == 1 and float(a[0]["improvement"]) == pytest.approx(0.03 / 0.21, rel=1e-5)
    assert a[0]["n_paired"] == "3" and a[0]["seeds"] == "1 2 3"
    strong = {(r["row"], r["dataset"], r["metric"]) for r in rows if r["strongest_baseline"] == "1"}
    assert strong == {("DNS", "A", "recall@50"), ("RNS", "A", "ndcg@50"),
                      ("DNS", "B", "recall@50"), ("RNS", "B", "ndcg@50")}


def test_cli_report_prints_and_writes(res_file, capsys):
    assert main(["report", str(res_file.parent)]) == 0
    out = capsys.readouterr().out
    assert "| SDNS vs <u>best baseline</u> |" in out
    md = (res_file.parent / "report.md").read_text()
    assert md.strip() in out
    assert (res_file.parent / "report.csv").read_text().startswith("row,method,dataset,metric")
    assert main(["report", str(res_file.parent / "missing")]) == 5  # cli.EXIT_FILE


def test_models_are_never_mixed_in_a_choice():
    rows = [row("dns", "A", "l", 1, 0.3, 0.2, 0.1), row("dns", "A", "n", 1, 0.4, 0.3, 0.2)]
    rows[1]["model"] = "ngcf"
    ch = select(rows)
    assert set(ch) == {(("lightgcn", "dns"), "A"), (("ngcf", "dns"), "A")}
    md = to_markdown(build_table(rows))
    assert "| LightGCN DNS |" in md and "| NGCF DNS |" in md


def test_row_labels_use_the_config_display_labels():
    rows_by = ("model", "method", "pool_size", "alpha", "reg", "dataset")
    assert label(("ngcf", "sdns", 16, 0.9, 1e-4, "x"), rows_by) == (
        "NGCF SDNS H=16 α=0.9 λ=0.0001 dataset=x")


def test_report_out_never_replaces_a_users_file(res_file, tmp_path, capsys):
    user = tmp_path / "userfiles"
    user.mkdir()
    (user / "paper.csv").write_text("mine\n")
    (user / "data.csv").write_text("mine\n")
    assert main(["report", str(res_file), "--out", str(user / "paper")]) == 5  # cli.EXIT_FILE
    err = capsys.readouterr().err
    assert "paper.csv exists and is not a softbpr report" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert (user / "paper.csv").read_text() == "mine\n" and not (user / "paper.md").exists()
    # --out data.v2 writes data.v2.md/.csv (with_suffix made it data.md/data.csv)
    assert main(["report", str(res_file), "--out", str(user / "data.v2")]) == 0
    assert (user / "data.csv").read_text() == "mine\n"
    assert (user / "data.v2.csv").read_text().startswith("row,method,")
    # a report that a report wrote is rewritten (docs/results' commands); so is the default one
    assert main(["report", str(res_file), "--out", str(user / "data.v2")]) == 0
    assert main(["report", str(res_file)]) == 0 and main(["report", str(res_file)]) == 0
    assert main(["report", str(res_file), "--out", str(user / "paper"), "--overwrite"]) == 0
    assert (user / "paper.csv").read_text().startswith("row,method,")
    assert main(["report", str(res_file), "--out", str(user / "t.md")]) == 0  # not t.md.md
    assert (user / "t.md").read_text().startswith("Test metrics") and (user / "t.csv").exists()


@pytest.mark.parametrize("line,what", [
    ("[1, 2]", "not a results row (a JSON object)"),
    ("5", "not a results row (a JSON object)"),
    ({"config": 5}, '"config" is not an object'),
    ({"valid": 5}, '"valid" is not an object of metric: number'),
    ({"test": {"recall@50": "high", "ndcg@50": 0.1}}, '"test" is not an object of metric'),
    ({"seed": None}, "no seed"),
    ('{"run": "runs/x", "val', "not a results row"),  # damaged, not last: a run would be lost
    (b'{"dataset": "caf\xe9"}', "not a results row ('utf-8' codec"),
])
def test_a_damaged_results_row_is_one_line_naming_file_and_line(tmp_path, capsys, line, what):
    rows = [json.dumps(r).encode() for r in results()]
    if isinstance(line, dict):
        bad = {**results()[2], **line}
        line = json.dumps({k: v for k, v in bad.items() if v is not None})
    rows.insert(2, line if isinstance(line, bytes) else line.encode())
    f = tmp_path / "results.jsonl"
    f.write_bytes(b"\n".join(rows) + b"\n")
    assert main(["report", str(f)]) == 4  # cli.EXIT_DATA
    err = capsys.readouterr().err
    assert err.startswith(f"softbpr: error: {f}:3: ") and what in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "report.md").exists()
    # a torn LAST line (a kill mid-write: no newline after it) is still skipped
    f.write_bytes(b"\n".join(rows[:2] + rows[3:]) + b'\n{"run": "runs/x", "val')
    assert len(load_results(f)) == len(results()) - 1  # (the diverged row is not a result)


def test_unknown_rows_or_proposed_and_a_zero_baseline(res_file, capsys):
    assert main(["report", str(res_file), "--proposed", "sdsn"]) == 2  # cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--proposed sdsn: no such row; choose among DNS, RNS, SDNS, IRGAN" in err
    assert main(["report", str(res_file), "--rows", "method,nosuchkey"]) == 2
    err = capsys.readouterr().err
    assert "--rows: 'nosuchkey' not a key of these results; choose among alpha," in err
    assert not (res_file.parent / "report.md").exists()
    assert main(["report", str(res_file), "--rows", "method,alpha", "--proposed",
                 "SDNS α=0.9"]) == 0
    assert "| SDNS α=0.9 vs <u>best baseline</u> |" in capsys.readouterr().out
    # the default proposed row (sdns) may be absent; a list-valued key is a row key too
    rows = [row("dns", "A", "d", s, 0.3, 0.2, 0.1, topk=[10, 50]) for s in SEEDS]
    assert "| DNS K=[10, 50] |" in to_markdown(build_table(rows, rows_by=("method", "topk")))
    # a zero baseline: no relative improvement (it printed +nan%), the t-test still stands
    rows = [row("dns", "A", "d", s, 0.3, 0.0, 0.0) for s in SEEDS]
    rows += [row("sdns", "A", "s", s, 0.3, 0.1 * s, 0.1 * s) for s in SEEDS]
    t = build_table(rows)
    md, text = to_markdown(t), to_csv(t)
    assert "nan" not in md + text and "| SDNS vs <u>best baseline</u> | – (p=" in md
    (s,) = [r for r in csv.DictReader(io.StringIO(text)) if r["row"] == "SDNS"
            and r["metric"] == "recall@50"]
    assert s["improvement"] == "" and s["n_paired"] == "3"


def test_a_run_is_kept_once_per_study(tmp_path):
    """Two collected files in one folder: a run repeated in both (overlapping collections) is
    one run, but the same run name from another study (the same config rerun by another sweep)
    is another run, not a duplicate that replaces the first."""
    old = [row("sl", "A", "p", s, 0.1, 0.2, 0.3) for s in SEEDS]
    new = [{**r, "study": "rerun", "test": {"recall@50": 0.5, "ndcg@50": 0.6}} for r in old]
    (tmp_path / "a-results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (tmp_path / "b-results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old + new))
    rows = load_results([tmp_path / "a-results.jsonl", tmp_path / "b-results.jsonl"])
    assert sorted((r["study"], r["seed"]) for r in rows) == sorted(
        [("t", s) for s in SEEDS] + [("rerun", s) for s in SEEDS])


def test_a_point_has_one_run_per_seed_across_studies():
    """A second stage that reruns a first stage's point (same config and seeds, another study)
    is one set of seeds in the table, not each seed twice (which shrinks the std)."""
    first = [row("sdns", "A", "s", s, 0.4, 0.2 + s / 100, 0.1) for s in SEEDS]
    again = [{**r, "study": "stage2"} for r in first]
    (c,) = select(first + again).values()
    assert [r["seed"] for r in c.runs] == list(SEEDS)
    assert [r["study"] for r in c.runs] == ["stage2"] * 3  # the later row wins


def test_a_run_in_two_files_with_other_metrics_is_noted(tmp_path, capsys):
    """Two files of one folder holding one run name: a plain repeat (shards, overlapping
    collections) is kept once without a word; with other metrics (two studies' rows reusing a
    run name) the later row wins and a note says so, naming both places."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    r = row("dns", "A", "p", 1, 0.3, 0.2, 0.1)
    a.write_text(json.dumps(r) + "\n")
    b.write_text(json.dumps(r) + "\n")
    assert len(load_results([a, b])) == 1 and capsys.readouterr().err == ""
    b.write_text(json.dumps({**r, "test": {"recall@50": 0.25, "ndcg@50": 0.1}}) + "\n")
    (kept,) = load_results([a, b])
    assert kept["test"]["recall@50"] == 0.25
    err = capsys.readouterr().err
    assert f"note: {b}:1 repeats run runs/dns-A-p-s1 of {a}:1 with other metrics" in err
