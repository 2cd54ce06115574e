"""Compare presets over several training seeds: test Recall/NDCG (mean ± std) as a Markdown table.

    python bench/compare.py --data synthetic --seeds 1,2,3 --presets rns,dns,sdns
    python bench/compare.py --data ../shared/data/ml-100k/u.data \
        --set columns=user,item,rating,timestamp --seeds 1,2,3 --out runs/compare-ml100k

Every run is a normal `softbpr.fit` run directory under --out (named <preset>-s<seed>); runs whose
result.json exists are reused, so an interrupted comparison resumes. Model selection is on
validation (early stopping on eval.metric); the table reports test metrics at the selected epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from softbpr.config import load
from softbpr.train import fit


def parse_set(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                continue
        out[k.replace("-", "_")] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--presets", default="rns,dns,sdns")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--set", nargs="*", default=[], help="extra flat config keys, key=value")
    ap.add_argument("--preset-set", nargs="*", default=[],
                    help="per-preset keys, preset:key=value (e.g. sdns:alpha=0.8)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    extra = parse_set(args.set)
    per = {}
    for item in args.preset_set:
        p, _, kv = item.partition(":")
        per.setdefault(p, {}).update(parse_set([kv]))
    name = Path(args.data).stem if args.data != "synthetic" else "synthetic"
    out = Path(args.out or f"runs/compare-{name}")
    rows = []
    for preset in args.presets.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            rd = out / f"{preset}-s{seed}"
            if (rd / "result.json").exists():
                res = json.loads((rd / "result.json").read_text())
            else:
                exp = load(overrides={"data": args.data, "preset": preset, "seed": seed, **extra,
                                      **per.get(preset, {})})
                res = fit(exp, out_dir=rd, log=lambda m: None, progress=False).result()
            rows.append({"preset": preset, "seed": seed, **res})
            print(f"{preset:6s} seed {seed}: test {res['test']} (best epoch {res['best_epoch']}, "
                  f"{res['seconds']:.0f}s)", flush=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = ["recall@50", "ndcg@50", "recall@20", "ndcg@20"]
    lines = ["| preset | " + " | ".join(f"test {m}" for m in metrics) + " | best epoch | s/run |",
             "|---|" + "---|" * (len(metrics) + 2)]
    for preset in args.presets.split(","):
        rs = [r for r in rows if r["preset"] == preset]
        cells = []
        for m in metrics:
            v = [r["test"][m] for r in rs]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.4f} ± {sd:.4f}")
        ep = statistics.mean(r["best_epoch"] for r in rs)
        sec = statistics.mean(r["seconds"] for r in rs)
        lines.append(f"| {preset} | " + " | ".join(cells) + f" | {ep:.0f} | {sec:.0f} |")
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
