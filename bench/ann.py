"""Approximate top-K (softbpr.ann, Faiss) against exact scoring: recall@K and latency per user.

    python bench/ann.py --run runs/gowalla-run           # a trained run directory
    python bench/ann.py --synth data/synth-10m.csv       # a synthetic log, SVD embeddings

--run: the run's own final embeddings and train pairs (`softbpr.load_recommender`).
--synth: the log is loaded and split as `softbpr train` would, and the embeddings are a rank-d
truncated SVD of the train matrix (randomised, 2 power iterations; users U·sqrt(S), items
V·sqrt(S)): a stand-in for a trained model on a catalogue too large to train here, which
carries the data's popularity and taste blocks (random vectors would make every index look
bad or good for the wrong reasons).

For a seeded sample of `--users` users with train items: the exact top-K (seen items excluded,
`Recommender.topk`) is the reference; each index (ivf at several nprobe, hnsw at several
efSearch) is built once and reports build seconds, recall@K = |ANN ∩ exact| / |exact| averaged
over the users, and seconds per user when the users are served in batches of `--batch` and one
at a time (the first 200 users; Python's per-call overhead, about 1 ms, dominates there). One thread unless OMP_NUM_THREADS says otherwise; the exact
path is timed the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch


def svd_embeddings(R, dim: int, seed: int = 0, iters: int = 2):
    """Randomised truncated SVD (Halko et al.) of a scipy CSR [U, I]: (users, items) float32."""
    rng = np.random.default_rng(seed)
    Y = R @ rng.standard_normal((R.shape[1], dim + 8)).astype(np.float32)
    Q, _ = np.linalg.qr(Y)
    for _ in range(iters):
        Q, _ = np.linalg.qr(R.T @ Q)
        Q, _ = np.linalg.qr(R @ Q)
    B = (R.T @ Q).T  # [dim + 8, I]
    Ub, S, Vt = np.linalg.svd(B, full_matrices=False)
    U = Q @ Ub[:, :dim]
    root = np.sqrt(S[:dim])
    return (U * root).astype(np.float32), (Vt[:dim].T * root).astype(np.float32)


def recommender_for(args):
    from softbpr.recommend import Recommender, load_recommender

    if args.run:
        return load_recommender(args.run, "cpu"), f"trained run {args.run}"
    from softbpr.config import load as load_config
    from softbpr.split import load_split

    t = time.perf_counter()
    split = load_split(load_config(None, {"data": args.synth}).data, log=lambda s: None)
    R = split.train.csr(split.n_users, split.n_items)
    uv, iv = svd_embeddings(R, args.dim)
    what = (f"{args.synth}: SVD embeddings (d = {args.dim}) of the train matrix "
            f"({time.perf_counter() - t:.0f} s to load and factorise)")
    return Recommender(torch.from_numpy(uv), torch.from_numpy(iv), split, R), what


def timed(fn, users, batch: int):
    t = time.perf_counter()
    out = [fn(users[s:s + batch]) for s in range(0, len(users), batch)]
    return time.perf_counter() - t, (np.concatenate([o[0] for o in out]),
                                     np.concatenate([o[1] for o in out]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run directory (model.pt)")
    src.add_argument("--synth", help="a user,item,timestamp log")
    ap.add_argument("--dim", type=int, default=64, help="--synth: SVD rank")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    rec, what = recommender_for(a)
    rng = np.random.default_rng(0)
    known = np.flatnonzero(rec._train_degree > 0)
    users = np.sort(rng.choice(known, size=min(a.users, len(known)), replace=False))
    print(f"{what}\n{rec.split.n_users:,} users x {rec.split.n_items:,} items; {len(users):,} "
          f"sampled users, K = {a.k}, {torch.get_num_threads()} thread(s), "
          f"{platform.machine()}, load average {os.getloadavg()[0]:.1f}")
    rec.use_index(None)
    ex_s, (ex_v, ex_i) = timed(lambda u: rec.topk(u, a.k), users, a.batch)
    one_s, _ = timed(lambda u: rec.topk(u, a.k), users[:200], 1)
    rows = [{"index": "exact", "build_s": 0.0, "recall": 1.0,
             "ms_per_user_batch": 1e3 * ex_s / len(users),
             "ms_per_user_single": 1e3 * one_s / min(200, len(users))}]
    configs = [("ivf", {"x": 1}), ("ivf", {"x": 2}), ("ivf", {"x": 4}),
               ("hnsw", {"ef_search": 64}), ("hnsw", {"ef_search": 128}),
               ("hnsw", {"ef_search": 256})]
    built = {}
    for kind, params in configs:
        key = kind
        t = time.perf_counter()
        if key not in built:
            rec.use_index(kind)
            built[key] = (rec.index, time.perf_counter() - t)
        index, build_s = built[key]
        rec.index = index
        if kind == "ivf":  # the default nprobe (nlist / 16) times x
            index.index.nprobe = min(index.params["nlist"], built.setdefault(
                "nprobe0", index.params["nprobe"]) * params["x"])
            index.params["nprobe"] = index.index.nprobe
        else:
            index.index.hnsw.efSearch = params["ef_search"]
            index.params["efSearch"] = params["ef_search"]
        s, (_, it) = timed(lambda u: rec.topk(u, a.k), users, a.batch)
        s1, _ = timed(lambda u: rec.topk(u, a.k), users[:200], 1)
        hits = [len(np.intersect1d(it[r][np.isfinite(ex_v[r])], ex_i[r][np.isfinite(ex_v[r])]))
                / max(1, np.isfinite(ex_v[r]).sum()) for r in range(len(users))]
        rows.append({"index": index.describe(), "build_s": build_s,
                     "recall": float(np.mean(hits)),
                     "ms_per_user_batch": 1e3 * s / len(users),
                     "ms_per_user_single": 1e3 * s1 / min(200, len(users))})
    print(f"| index | build | recall@{a.k} vs exact | ms / user (batches of {a.batch}) | "
          "ms / user (one at a time) |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['index']} | {r['build_s']:.1f} s | {r['recall']:.4f} | "
              f"{r['ms_per_user_batch']:.3f} | {r['ms_per_user_single']:.3f} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"what": what, "k": a.k, "users": len(users), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
