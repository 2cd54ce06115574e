"""Seconds per training epoch (per sampler) and per full evaluation, with the cost ratios.

    python bench/epoch.py                       # default dataset, ml-100k and Gowalla if present
    python bench/epoch.py --datasets synthetic --device cuda
    python bench/epoch.py --max-batches 100     # time at most 100 batches, extrapolate the epoch
    python bench/epoch.py --model ngcf          # the same samplers with NGCF as the recommender

Datasets: `synthetic` (the built-in default), `ml-100k` (../shared/data/ml-100k/u.data, per-user
80/20 random split), `gowalla` (../shared/data/gowalla, the LightGCN files). Missing real data is
skipped with a note. For each: LightGCN (or --model; d=64, L=3, batch 2048) epoch time for rns,
dns H=16, dns H=64, sdns H=16 and the baselines mixgcf H=16, irgan and advir (an epoch longer
than --max-batches is timed on that many batches and extrapolated; a sampler's one-off `setup`,
e.g. the GAN generator's pre-training, is timed apart), one forward and one backward
propagation, a full test evaluation (top-50, train and valid items masked) and the bare user x
item score matmul over the same users. The forward, backward, one sdns batch, the evaluation
and the bare matmul are timed as paired repeats (best of 5-10, resp. 2), so that each ratio
compares costs measured under the same conditions on a shared machine. Ratios printed:
  dns/rns batch      (target <= 1.3: candidate scoring must not dominate)
  batch / 2 fwd      (target <= 1.5: backward through the symmetric adjacency ~ one forward)
  eval / matmul      (target <= 1.5: masking + top-k must stay cheap)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from softbpr.config import DataConfig, LossConfig, SamplerConfig, load
from softbpr.distributed import Dist
from softbpr.graph import InteractionGraph
from softbpr.losses import build_loss
from softbpr.models import build_model
from softbpr.samplers import build_sampler
from softbpr.seeding import Generators, pick_device
from softbpr.split import load_split
from softbpr.trainer import Parts, evaluate_model, train_one_epoch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLERS = [("rns", "uniform", "bpr", 1), ("dns H=16", "dns", "bpr", 16),
            ("dns H=64", "dns", "bpr", 64), ("sdns H=16", "dns", "soft_bpr", 16),
            ("mixgcf H=16", "mixgcf", "bpr", 16), ("irgan", "irgan", "bpr", 1),
            ("advir", "advir", "adv_bpr", 1)]


def data_config(name: str) -> DataConfig | None:
    if name == "synthetic":
        return DataConfig()
    if name == "ml-100k":
        p = SHARED / "ml-100k" / "u.data"
        return DataConfig(data=str(p), columns="user,item,rating,timestamp", split="random",
                          valid_ratio=0.0, test_ratio=0.2) if p.exists() else None
    if name == "gowalla":
        p = SHARED / "gowalla"
        return DataConfig(data=str(p)) if p.exists() else None
    raise SystemExit(f"unknown dataset {name!r}")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def once(fn, dev) -> float:
    sync(dev)
    t = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t


def timed(fn, dev, repeat: int) -> float:
    fn()
    sync(dev)
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(dev)
    return (time.perf_counter() - t) / repeat


def bench(name: str, dev: torch.device, max_batches: int, batch: int = 2048,
          model_name: str = "lightgcn", gen_pretrain_epochs: int = 10,
          only: set[str] | None = None) -> dict:
    cfg = data_config(name)
    if cfg is None:
        print(f"\n== {name}: skipped (not found under {SHARED})")
        return {}
    t0 = time.perf_counter()
    split = load_split(cfg, log=lambda m: None)
    load_s = time.perf_counter() - t0
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, dev)
    n = len(split.train)
    n_batches = -(-n // batch)
    timed_batches = min(n_batches, max_batches)
    print(f"\n== {split.summary()}\n   load+split {load_s:.1f}s; {n_batches} batches/epoch, "
          f"timing {timed_batches}" + (" (extrapolated)" if timed_batches < n_batches else ""))
    rng = np.random.default_rng(0)
    sel = rng.permutation(n)[:timed_batches * batch]
    tu = torch.from_numpy(split.train.users[sel]).to(dev)
    ti = torch.from_numpy(split.train.items[sel]).to(dev)
    out: dict = {"dataset": name, "model": model_name, "users": split.n_users,
                 "items": split.n_items, "train": n, "batches_per_epoch": n_batches}

    model = build_model(model_name, split.n_users, split.n_items, 64, 3, "xavier",
                        torch.Generator().manual_seed(0)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    per_batch, objs = {}, {}
    for label, sname, lname, H in SAMPLERS:
        if only and label.split()[0] not in only:
            continue
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as the trainer
        sampler = build_sampler(SamplerConfig(name=sname, pool_size=H,
                                              gen_pretrain_epochs=gen_pretrain_epochs))
        loss = build_loss(LossConfig(name=lname))  # soft/mixed BPR: the default α = 0.9
        setup_s = 0.0
        if hasattr(sampler, "setup"):
            ts = time.perf_counter()
            sampler.setup(model, graph, split, dev, gen)
            sampler.on_epoch_start(1)  # (the GAN generator's pre-training: timed as setup)
            sync(dev)
            setup_s = time.perf_counter() - ts
            out[f"setup_s[{label}]"] = setup_s
        exp = load(overrides={"batch_size": batch, "reg": 1e-4, "lr": 1e-3})
        parts = Parts(exp, split, graph, model, model, sampler, loss, opt,
                      Generators(gen, gen, gen), tu[:2 * batch], ti[:2 * batch], {}, Dist())
        # warm-up on a few batches, then one timed pass
        train_one_epoch(parts)
        sync(dev)
        sampler.on_epoch_start(2)  # GAN samplers: put one G phase + redraw in the timing
        parts.train_u, parts.train_i = tu, ti
        st = train_one_epoch(parts)
        fixed = st.get("gen_phase_seconds", 0.0)  # once per epoch: not extrapolated per batch
        pb = (st["train_seconds"] - fixed) / timed_batches
        per_batch[label] = pb
        objs[label] = parts
        out[f"epoch_s[{label}]"] = pb * n_batches + fixed
        out[f"sample_s[{label}]"] = ((st["sample_seconds"] - fixed) / timed_batches * n_batches
                                     + fixed)
        print(f"   {label:11s} {pb * n_batches + fixed:8.2f} s/epoch  ({pb * 1e3:6.1f} ms/batch, "
              f"sampling {(st['sample_seconds'] - fixed) / timed_batches * 1e3:5.1f} ms/batch"
              + (f" + {fixed:.1f} s per epoch" if fixed else "") + ")"
              + (f"; setup {setup_s:.1f} s once" if setup_s >= 0.05 else ""))

    model.train()
    w = None

    def fwd():
        return model.propagate(graph)

    def fwd_bwd():
        nonlocal w
        e = model.propagate(graph)
        if w is None:
            w = (torch.randn_like(e.user), torch.randn_like(e.item))
        ((e.user * w[0]).sum() + (e.item * w[1]).sum()).backward()

    sd = objs.get("sdns H=16")

    def sdns_batch():  # one training batch of sdns H=16 (the sampler timed above)
        sd.train_u, sd.train_i = tu[:batch], ti[:batch]
        train_one_epoch(sd)

    # paired repeats, minimum of each: the ratio compares the two under the same conditions
    # (one pass each is at the mercy of whatever else runs on a shared machine)
    rep = 10 if split.n_users + split.n_items < 20000 else 5
    runs = [("fwd", fwd), ("fwd_bwd", fwd_bwd)] + ([("batch", sdns_batch)] if sd else [])
    for _, fn in runs:  # warm-up
        once(fn, dev)
    best = {k: float("inf") for k, _ in runs}
    for _ in range(rep):
        for k, fn in runs:
            best[k] = min(best[k], once(fn, dev))
    t_f, t_fb = best["fwd"], best["fwd_bwd"]
    out.update({"forward_ms": t_f * 1e3, "backward_ms": (t_fb - t_f) * 1e3})
    print(f"   propagation ({model_name}): forward {t_f * 1e3:.1f} ms, backward "
          f"{(t_fb - t_f) * 1e3:.1f} ms per batch (3 layers, full graph; best of {rep})")

    model.eval()
    with torch.no_grad():
        emb = model.propagate(graph)
        users = torch.from_numpy(np.unique(split.test.users)).to(dev)
        bs = max(1, min(4096, (1 << 25) // split.n_items))

        def bare():
            for s in range(0, len(users), bs):
                (emb.user[users[s:s + bs]] @ emb.item.T).max()

    def full_eval():
        evaluate_model(model, graph, split, "test", (20, 50))

    with torch.no_grad():  # warm-up, then alternate: best of 2 each
        once(full_eval, dev), once(bare, dev)
        t_eval, t_mm = once(full_eval, dev), once(bare, dev)
        t_eval, t_mm = min(t_eval, once(full_eval, dev)), min(t_mm, once(bare, dev))
    out.update({"eval_s": t_eval, "matmul_s": t_mm})
    print(f"   full evaluation (top-50, masked) {t_eval:.2f} s; bare score matmul {t_mm:.2f} s "
          f"for {len(users):,} users (best of 2)")
    ratios = []
    if "dns H=16" in per_batch and "rns" in per_batch:
        out["ratio_dns_rns"] = per_batch["dns H=16"] / per_batch["rns"]
        ratios.append(f"dns16/rns batch {out['ratio_dns_rns']:.2f} (<=1.3)")
    if sd:
        out["batch_ms[sdns H=16]"] = best["batch"] * 1e3
        out["ratio_batch_2fwd"] = best["batch"] / (2 * t_f)
        ratios.append(f"sdns batch / 2 fwd {out['ratio_batch_2fwd']:.2f} (<=1.5; "
                      f"{best['batch'] * 1e3:.1f} ms / 2 x {t_f * 1e3:.1f} ms, best of {rep})")
    out["ratio_eval_matmul"] = t_eval / t_mm
    ratios.append(f"eval / matmul {out['ratio_eval_matmul']:.2f} (<=1.5)")
    print("   ratios: " + ", ".join(ratios))
    return out


def machine(dev: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    s = f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if dev.type == "cuda":
        s += f", GPU {torch.cuda.get_device_name(dev)}"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="synthetic,ml-100k,gowalla")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-batches", type=int, default=150)
    ap.add_argument("--model", default="lightgcn", help="lightgcn | ngcf | mf")
    ap.add_argument("--gen-pretrain-epochs", type=int, default=10,
                    help="irgan/advir generator pre-training epochs (timed as setup)")
    ap.add_argument("--samplers", default="",
                    help="only these (comma list of rns,dns,sdns,mixgcf,irgan,advir; default all)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    dev = pick_device(args.device)
    print(f"machine: {machine(dev)}; device {dev}")
    rows = [r for d in args.datasets.split(",")
            if (r := bench(d.strip(), dev, args.max_batches, model_name=args.model,
                           gen_pretrain_epochs=args.gen_pretrain_epochs,
                           only=set(args.samplers.split(",")) if args.samplers else None))]
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(dev), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
