"""The one training loop: `fit(experiment) -> Run`.

Per epoch (`train_one_epoch`): every training pair once, in an order shuffled by the seeded
generator, in batches of `batch_size` (the last batch may be smaller). Per batch:
    emb = model.propagate(graph)                       # full pass, with grad
    neg = sampler.sample(users, pos, emb, graph, gen)  # ids + pooled embeddings (with grad)
    L   = loss(e_u, e_i, e_j) + λ · l2(layer-0 rows of u, i, j)
Adam updates all parameters. The outer loop evaluates on validation every `eval_every` epochs,
keeps the best weights by `eval.metric`, stops after `patience` evaluations without improvement,
restores the best weights and evaluates them on test. A non-finite loss stops training with
`TrainingDiverged`; the last good checkpoint on disk is kept.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import atomic_write, save_checkpoint, write_embeddings, write_json
from .config import Experiment
from .data import unique
from .diagnostics import bin_counts, delta_edges, summarize_delta
from .distributed import Dist
from .distributed import setup as dist_setup
from .evaluate import RankingTask, score_task
from .graph import InteractionGraph
from .losses import build_loss, gradient_weight, l2_penalty
from .models import MF, build_model
from .samplers import build_sampler
from .seeding import make_generators
from .split import Pairs, Split, load_split


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Run:
    """The outcome of `fit`: the selected model and what was measured."""

    experiment: Experiment
    split: Split
    model: MF
    graph: InteractionGraph
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    valid: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    seconds: float = 0.0
    out_dir: Path | None = None
    stop_reason: str = "epochs"
    """epochs (train.epochs reached) | early_stop | time_limit."""

    def result(self) -> dict:
        return {"best_epoch": self.best_epoch, "valid": self.valid, "test": self.test,
                "seconds": round(self.seconds, 3), "method": self.experiment.method,
                "model": self.experiment.model.name, "dataset": self.split.name,
                "seed": self.experiment.train.seed, "epochs_run": len(self.history),
                "stop_reason": self.stop_reason}


def _key_tensor(p: Pairs, n_items: int, device) -> torch.Tensor:
    return torch.from_numpy(unique(p.users * n_items + p.items)).to(device)


def _member(keys: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    if keys.numel() == 0:
        return torch.zeros_like(q, dtype=torch.bool)
    i = torch.searchsorted(keys, q).clamp_(max=keys.numel() - 1)
    return keys[i] == q


def train_one_epoch(model: MF, graph: InteractionGraph, sampler, loss_fn, reg: float,
                    optimizer: torch.optim.Optimizer, train_u: torch.Tensor, train_i: torch.Tensor,
                    batch_size: int, generator: torch.Generator, progress: bool = False,
                    desc: str = "", diag_keys: dict[str, torch.Tensor] | None = None,
                    shuffle_generator: torch.Generator | None = None, net=None,
                    dist: Dist = Dist(), max_batches: int = 0) -> dict[str, float]:
    """One pass over all training pairs; returns per-epoch statistics (see history.jsonl).

    generator draws negatives; shuffle_generator (default: generator) orders the epoch and must
    be seeded alike on every rank. With several ranks, every global batch of `batch_size` pairs
    is cut into `dist.world` near-equal slices and this rank trains on its own slice; `net` (the
    DistributedDataParallel wrapper of `model`) averages the gradients. A last global batch
    smaller than the number of ranks is skipped so that no rank gets an empty slice.
    max_batches > 0 stops the epoch after that many (global) batches of the shuffled order.
    """
    model.train()
    net = net if net is not None else model
    dev = graph.device
    n = train_u.numel()
    perm = torch.randperm(n, device=dev, generator=shuffle_generator or generator)
    n_batches = (n + batch_size - 1) // batch_size
    if dist.active and n - (n_batches - 1) * batch_size < dist.world:
        n_batches -= 1
    if max_batches:
        n_batches = min(n_batches, max_batches)
    tot = torch.zeros(5, dtype=torch.float64, device=dev)  # loss, reg, gap, Δ, count
    diag_keys = diag_keys or {}
    # hits per diagnostic key, then the number of real (id-carrying) negatives checked
    fn_hits = torch.zeros(len(diag_keys) + 1, dtype=torch.float64, device=dev)
    edges = delta_edges(dev)
    delta_hist = torch.zeros(edges.numel(), dtype=torch.float64, device=dev)  # Δ counts per bin
    alpha = getattr(loss_fn, "alpha", 0.0)
    sample_s = 0.0
    t0 = time.perf_counter()
    bar = tqdm(range(n_batches), desc=desc, leave=False, disable=not progress, file=sys.stderr,
               unit="batch", dynamic_ncols=True)
    for b in bar:
        idx = perm[b * batch_size:(b + 1) * batch_size]
        if dist.active:
            idx = torch.tensor_split(idx, dist.world)[dist.rank]
        users, pos = train_u[idx], train_i[idx]
        emb = net(graph)  # model.propagate(graph), through DDP when distributed
        ts = time.perf_counter()
        neg = sampler.sample(users, pos, emb, graph, generator)
        sample_s += time.perf_counter() - ts
        eu, ei = emb.user[users], emb.item[pos]
        loss = loss_fn(eu, ei, neg.emb)
        neg_ego = neg.ego if neg.ego is not None else model.layer0_items(neg.items)
        penalty = l2_penalty(model.layer0_users(users), model.layer0_items(pos), neg_ego)
        total = loss + reg * penalty
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        with torch.no_grad():
            gap = (eu * ei).sum(-1) - (eu * neg.emb).sum(-1)  # ŷ_ui − ŷ_uj, [B]
            delta = gradient_weight(gap, alpha)  # gradient weight Δ (eq. 8/9)
            delta_hist += bin_counts(delta, edges)
            m = users.numel()
            tot += torch.stack([loss.detach().double() * m, penalty.detach().double() * m,
                                gap.double().sum(), delta.double().sum(),
                                torch.tensor(float(m), dtype=torch.float64, device=dev)])
            if diag_keys and neg.items is not None:
                q = users * graph.n_items + neg.items
                for k, keys in enumerate(diag_keys.values()):
                    fn_hits[k] += _member(keys, q).sum()
                fn_hits[-1] += q.numel()
    bar.close()
    dist.all_sum(tot)
    dist.all_sum(fn_hits)
    dist.all_sum(delta_hist)
    vals = tot.tolist()  # note: the one host sync of the epoch
    count = max(vals[4], 1.0)
    out = {"loss": vals[0] / count if vals[4] else float("nan"), "reg": vals[1] / count,
           "train_seconds": time.perf_counter() - t0, "sample_seconds": sample_s,
           "score_gap": vals[2] / count, "grad_weight": vals[3] / count}
    hits = fn_hits.tolist()
    for k, v in zip(diag_keys, hits[:-1] if hits[-1] else []):  # none for synthetic negatives
        out[k] = v / hits[-1]
    out.update(summarize_delta(delta_hist.tolist()))  # quantiles + counts
    if hasattr(sampler, "stats"):
        out.update(sampler.stats())
    return out


def evaluate_model(model: MF, graph: InteractionGraph, split: Split, which: str,
                   ks, batch_users: int = 0, dist: Dist = Dist(),
                   cache: dict | None = None) -> dict[str, float]:
    """Full-ranking metrics on split.valid ('valid', train masked) or split.test ('test', train
    and valid masked). See evaluate.rank_metrics for the definitions. With several ranks each
    scores a share of the users and the means are combined exactly (weighted by user counts).
    `cache` (a dict owned by the caller) keeps the prepared masks/truth between evaluations."""
    model.eval()
    with torch.no_grad():
        emb = model.propagate(graph)
    task = cache.get(which) if cache is not None else None
    if task is None:
        n_u, n_i = split.n_users, split.n_items
        if which == "valid":
            truth, mask = split.valid.csr(n_u, n_i), graph.train_csr
        elif which == "test":
            truth = split.test.csr(n_u, n_i)
            mask = (graph.train_csr + split.valid.csr(n_u, n_i)).tocsr()
            mask.sort_indices()
        else:
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        task = RankingTask.build(truth, mask, graph.device, (dist.rank, dist.world))
        if cache is not None:
            cache[which] = task
    res = score_task(task, emb.user, emb.item, ks, batch_users or None)
    if not dist.active:
        return res
    keys = [k for k in res if k != "users"]
    n = res["users"]
    t = torch.tensor([(0.0 if n == 0 else res[k] * n) for k in keys] + [float(n)],
                     dtype=torch.float64)
    dist.all_sum(t)
    total = t[-1].item()
    return {**{k: (t[j].item() / total if total else float("nan")) for j, k in enumerate(keys)},
            "users": int(total)}


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "users")


def _round(d: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def fit(exp: Experiment, split: Split | None = None, out_dir: str | Path | None = None,
        log: Callable[[str], None] = print, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None, resume: bool = False) -> Run:
    """Train `exp` (loading its data unless `split` is given); write outputs to `out_dir`.

    Files in out_dir (rank 0 only): config.json, history.jsonl (one row per epoch), model.pt
    (best weights so far, rewritten at each improvement), state.pt (the full training state:
    weights, optimizer, RNG states, epoch, early-stopping state; rewritten atomically every
    `train.checkpoint_every` epochs), result.json and embeddings.npz (at the end).
    resume=True continues from out_dir/state.pt; with the same seed the final result is the same
    as that of an uninterrupted run.
    Launched by torchrun with several processes, training is data-parallel (see distributed.py).
    """
    t_start = time.perf_counter()
    dist, device = dist_setup(exp.train.device)
    if not dist.main:
        log, progress = (lambda s: None), False
    if split is None:
        split = load_split(exp.data, log)
    log(split.summary())
    out = Path(out_dir) if out_dir is not None else None
    state_path = out / "state.pt" if out is not None else None
    if resume and (state_path is None or not state_path.exists()):
        raise FileNotFoundError(f"cannot resume: {state_path} does not exist")
    write = out is not None and dist.main
    if write and not resume:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**exp.to_dict(), "dataset_notes": list(split.notes),
                                         "device": str(device), "world_size": dist.world})
        (out / "history.jsonl").write_text("")

    init_gen, shuffle_gen, gen = make_generators(exp.train.seed, device, dist.rank)
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, device)
    m = exp.model
    model = build_model(m.name, split.n_users, split.n_items, m.dim, m.layers, m.init,
                        init_gen, **m.options()).to(device)
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=None)
    sampler = build_sampler(exp.sampler)
    loss_fn = build_loss(exp.loss)
    opt = torch.optim.Adam(model.parameters(), lr=exp.train.lr, fused=True)  # 1 kernel/step
    train_u = torch.from_numpy(split.train.users).to(device)
    train_i = torch.from_numpy(split.train.items).to(device)

    # diagnostics: how often the chosen negative is a held-out positive / a planted preference
    diag = {}
    held = Pairs(np.concatenate([split.valid.users, split.test.users]),
                 np.concatenate([split.valid.items, split.test.items]))
    if len(held):
        diag["neg_heldout_rate"] = _key_tensor(held, split.n_items, device)
    if split.truth is not None:
        t = split.truth.tocoo()
        diag["neg_truth_rate"] = _key_tensor(Pairs(t.row.astype(np.int64), t.col.astype(np.int64)),
                                             split.n_items, device)

    run = Run(exp, split, model, graph, out_dir=out)
    metric = exp.eval.metric
    eval_cache: dict = {}
    best, best_state, bad_evals, first_epoch, elapsed = -np.inf, None, 0, 1, 0.0
    if hasattr(sampler, "setup"):  # (on resume too: its RNG draws are overwritten just below)
        sampler.setup(model, graph, split, device, gen)
    if resume:
        if write:  # a run killed mid-write (SIGKILL) may leave a temp file; the target is intact
            for tmp in out.glob(".*.tmp"):
                tmp.unlink()
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        shuffle_gen.set_state(st["shuffle_rng"])
        gen.set_state(st["sample_rng"][dist.rank])
        torch.set_rng_state(st["torch_rng"])
        if st.get("sampler") is not None:
            sampler.load_state_dict(st["sampler"])
        best, best_state, bad_evals = st["best"], st["best_state"], st["bad_evals"]
        run.best_epoch, run.valid, elapsed = st["best_epoch"], st["valid"], st["elapsed"]
        first_epoch = st["epoch"] + 1
        rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines() if x]
        run.history = [r for r in rows if r["epoch"] < first_epoch]
        if write:  # drop rows of epochs after the saved state (killed between the two writes)
            (out / "history.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in run.history))
        log(f"resuming {out} at epoch {first_epoch}")

    def over_budget() -> bool:
        """Past train.time_limit? With several ranks, rank 0's clock decides for all (each
        rank's own clock could stop one rank while the others wait in an all-reduce)."""
        limit = exp.train.time_limit
        if not limit:
            return False
        over = elapsed + time.perf_counter() - t_start > 60.0 * limit
        if dist.active:
            flag = torch.tensor([1.0 if over and dist.main else 0.0], dtype=torch.float64,
                                device=device)
            over = dist.all_sum(flag).item() > 0
        return over

    has_valid = len(split.valid) > 0
    if not has_valid:
        log("no validation pairs: training all epochs and keeping the last one")
    stopped = bool(exp.train.patience and bad_evals >= exp.train.patience)
    hist_fh = open(out / "history.jsonl", "a") if write else None
    try:
        for epoch in range(first_epoch, exp.train.epochs + 1):
            if stopped:
                break
            if hasattr(sampler, "on_epoch_start"):  # GAN samplers: one G refresh per epoch
                sampler.on_epoch_start(epoch, max_batches=exp.train.max_batches)
            row = {"epoch": epoch, **train_one_epoch(
                model, graph, sampler, loss_fn, exp.train.reg, opt, train_u, train_i,
                exp.train.batch_size, gen, progress, f"epoch {epoch}", diag,
                shuffle_generator=shuffle_gen, net=net, dist=dist,
                max_batches=exp.train.max_batches)}
            if not np.isfinite(row["loss"]):
                if hist_fh is not None:
                    hist_fh.write(json.dumps(_round(row)) + "\n")
                raise TrainingDiverged(
                    f"epoch {epoch}: the loss is {row['loss']} (non-finite); stopped. Try a lower "
                    f"lr (now {exp.train.lr}) or reg. The last good checkpoint "
                    f"(epoch {run.best_epoch}) is kept.")
            last = epoch == exp.train.epochs
            out_of_time = not last and over_budget()
            if has_valid and (epoch % exp.train.eval_every == 0 or last or out_of_time):
                te = time.perf_counter()
                valid = evaluate_model(model, graph, split, "valid", exp.eval.topk,
                                       exp.eval.batch_users, dist, eval_cache)
                row["eval_seconds"] = time.perf_counter() - te
                row["valid"] = {k: v for k, v in valid.items() if k != "users"}
                score = valid[metric]
                improved = score > best
                if improved:
                    best, bad_evals, run.best_epoch = score, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                    run.valid = row["valid"]
                    if write:
                        save_checkpoint(out / "model.pt", exp, model, split, epoch, row["valid"])
                else:
                    bad_evals += 1
                log(f"epoch {epoch:4d} | loss {row['loss']:.4f} | {row['train_seconds']:.1f}s "
                    f"+ eval {row['eval_seconds']:.1f}s | valid {_fmt(row['valid'])}"
                    f"{' *' if improved else ''}")
            stopped = bool(has_valid and exp.train.patience and bad_evals >= exp.train.patience)
            stopped = stopped or out_of_time
            if hist_fh is not None:
                hist_fh.write(json.dumps(_round(row)) + "\n")
                hist_fh.flush()
            run.history.append(row)
            if out is not None and (epoch % exp.train.checkpoint_every == 0 or last or stopped):
                sample_rngs = dist.gather_objects(gen.get_state())
                if write:
                    state = {"epoch": epoch, "model": model.state_dict(),
                             "optimizer": opt.state_dict(), "shuffle_rng": shuffle_gen.get_state(),
                             "sample_rng": sample_rngs, "torch_rng": torch.get_rng_state(),
                             "sampler": (sampler.state_dict() if hasattr(sampler, "state_dict")
                                         else None),
                             "best": best, "best_state": best_state, "bad_evals": bad_evals,
                             "best_epoch": run.best_epoch, "valid": run.valid,
                             "elapsed": elapsed + time.perf_counter() - t_start}
                    atomic_write(state_path, lambda tmp: torch.save(state, tmp))
            if on_epoch is not None:
                on_epoch(row)
            if out_of_time:
                log(f"time limit: {exp.train.time_limit:g} min passed after epoch {epoch}; "
                    f"stopping with the best weights so far")
                run.stop_reason = "time_limit"
            elif stopped:
                log(f"early stop: {metric} did not improve for {bad_evals} evaluations")
                run.stop_reason = "early_stop"
    finally:
        if hist_fh is not None:
            hist_fh.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        run.best_epoch = run.history[-1]["epoch"]
        if write:
            save_checkpoint(out / "model.pt", exp, model, split, run.best_epoch)
    run.test = {k: v for k, v in evaluate_model(model, graph, split, "test", exp.eval.topk,
                                                exp.eval.batch_users, dist).items()
                if k != "users"}
    run.seconds = elapsed + time.perf_counter() - t_start
    log(f"best epoch {run.best_epoch} | test {_fmt(run.test)} | {run.seconds:.1f}s")
    if write:
        save_checkpoint(out / "model.pt", exp, model, split, run.best_epoch,
                        {"valid": run.valid, "test": run.test})
        with torch.no_grad():
            emb = model.propagate(graph)
        write_embeddings(out / "embeddings.npz", split, emb.user, emb.item)
        write_json(out / "result.json", run.result())
    dist.barrier()
    return run


__all__ = ["Run", "TrainingDiverged", "evaluate_model", "fit", "train_one_epoch"]
