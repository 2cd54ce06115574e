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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import save_checkpoint, write_embeddings, write_json
from .config import Experiment
from .evaluate import rank_metrics
from .graph import InteractionGraph
from .losses import build_loss, l2_penalty
from .models import MF, build_model
from .samplers import build_sampler
from .seeding import make_generators, pick_device
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

    def result(self) -> dict:
        return {"best_epoch": self.best_epoch, "valid": self.valid, "test": self.test,
                "seconds": round(self.seconds, 3), "method": self.experiment.method,
                "model": self.experiment.model.name, "dataset": self.split.name,
                "seed": self.experiment.train.seed}


def _key_tensor(p: Pairs, n_items: int, device) -> torch.Tensor:
    return torch.from_numpy(np.unique(p.users * n_items + p.items)).to(device)


def _member(keys: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    if keys.numel() == 0:
        return torch.zeros_like(q, dtype=torch.bool)
    i = torch.searchsorted(keys, q).clamp_(max=keys.numel() - 1)
    return keys[i] == q


def train_one_epoch(model: MF, graph: InteractionGraph, sampler, loss_fn, reg: float,
                    optimizer: torch.optim.Optimizer, train_u: torch.Tensor, train_i: torch.Tensor,
                    batch_size: int, generator: torch.Generator, progress: bool = False,
                    desc: str = "", diag_keys: dict[str, torch.Tensor] | None = None
                    ) -> dict[str, float]:
    """One pass over all training pairs; returns per-epoch statistics (see history.jsonl)."""
    model.train()
    dev = graph.device
    n = train_u.numel()
    perm = torch.randperm(n, device=dev, generator=generator)
    n_batches = (n + batch_size - 1) // batch_size
    tot = torch.zeros(5, dtype=torch.float64, device=dev)  # loss, reg, gap, Δ, count
    diag_keys = diag_keys or {}
    fn_hits = {k: torch.zeros((), dtype=torch.float64, device=dev) for k in diag_keys}
    sample_s = 0.0
    t0 = time.perf_counter()
    bar = tqdm(range(n_batches), desc=desc, leave=False, disable=not progress, file=sys.stderr,
               unit="batch", dynamic_ncols=True)
    for b in bar:
        idx = perm[b * batch_size:(b + 1) * batch_size]
        users, pos = train_u[idx], train_i[idx]
        emb = model.propagate(graph)
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
            alpha = getattr(loss_fn, "alpha", 0.0)
            delta = 1.0 - torch.sigmoid((1.0 - alpha) * gap)
            m = users.numel()
            tot += torch.stack([loss.detach().double() * m, penalty.detach().double() * m,
                                gap.double().sum(), delta.double().sum(),
                                torch.tensor(float(m), dtype=torch.float64, device=dev)])
            if diag_keys and neg.items is not None:
                q = users * graph.n_items + neg.items
                for k, keys in diag_keys.items():
                    fn_hits[k] += _member(keys, q).sum()
    bar.close()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    vals = tot.tolist()
    out = {"loss": vals[0] / vals[4], "reg": vals[1] / vals[4],
           "train_seconds": time.perf_counter() - t0, "sample_seconds": sample_s,
           "score_gap": vals[2] / vals[4], "grad_weight": vals[3] / vals[4]}
    for k, v in fn_hits.items():
        out[k] = float(v) / vals[4]
    if hasattr(sampler, "stats"):
        out.update(sampler.stats())
    return out


def evaluate_model(model: MF, graph: InteractionGraph, split: Split, which: str,
                   ks, batch_users: int = 0) -> dict[str, float]:
    """Full-ranking metrics on split.valid ('valid', train masked) or split.test ('test', train
    and valid masked). See evaluate.rank_metrics for the definitions."""
    model.eval()
    with torch.no_grad():
        emb = model.propagate(graph)
    n_u, n_i = split.n_users, split.n_items
    if which == "valid":
        truth, mask = split.valid.csr(n_u, n_i), graph.train_csr
    elif which == "test":
        truth = split.test.csr(n_u, n_i)
        mask = (graph.train_csr + split.valid.csr(n_u, n_i)).tocsr()
        mask.sort_indices()
    else:
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
    return rank_metrics(emb.user, emb.item, truth, mask, ks, batch_users or None)


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "users")


def _round(d: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def fit(exp: Experiment, split: Split | None = None, out_dir: str | Path | None = None,
        log: Callable[[str], None] = print, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None) -> Run:
    """Train `exp` (loading its data unless `split` is given); write outputs to `out_dir`.

    Files in out_dir: config.json, history.jsonl (one row per epoch), model.pt (best weights so
    far, updated at each improvement), result.json and embeddings.npz (at the end).
    """
    t_start = time.perf_counter()
    device = pick_device(exp.train.device)
    if split is None:
        split = load_split(exp.data, log)
    log(split.summary())
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**exp.to_dict(), "dataset_notes": list(split.notes),
                                         "device": str(device)})
        (out / "history.jsonl").write_text("")

    _, init_gen, gen = make_generators(exp.train.seed, device)
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, device)
    m = exp.model
    model = build_model(m.name, split.n_users, split.n_items, m.dim, m.layers, m.init,
                        init_gen, **m.options()).to(device)
    sampler = build_sampler(exp.sampler.name, exp.sampler.pool_size, **exp.sampler.options())
    if hasattr(sampler, "setup"):
        sampler.setup(model, graph, split, device, gen)
    loss_fn = build_loss(exp.loss.name, exp.loss.alpha, **exp.loss.options())
    opt = torch.optim.Adam(model.parameters(), lr=exp.train.lr)
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
    best, best_state, bad_evals = -np.inf, None, 0
    has_valid = len(split.valid) > 0
    if not has_valid:
        log("no validation pairs: training all epochs and keeping the last one")
    hist_fh = open(out / "history.jsonl", "a") if out is not None else None
    try:
        for epoch in range(1, exp.train.epochs + 1):
            row = {"epoch": epoch, **train_one_epoch(
                model, graph, sampler, loss_fn, exp.train.reg, opt, train_u, train_i,
                exp.train.batch_size, gen, progress, f"epoch {epoch}", diag)}
            if not np.isfinite(row["loss"]):
                if hist_fh is not None:
                    hist_fh.write(json.dumps(_round(row)) + "\n")
                raise TrainingDiverged(
                    f"epoch {epoch}: the loss is {row['loss']} (non-finite); stopped. Try a lower "
                    f"lr (now {exp.train.lr}) or reg. The last good checkpoint "
                    f"(epoch {run.best_epoch}) is kept.")
            last = epoch == exp.train.epochs
            if has_valid and (epoch % exp.train.eval_every == 0 or last):
                te = time.perf_counter()
                valid = evaluate_model(model, graph, split, "valid", exp.eval.topk,
                                       exp.eval.batch_users)
                row["eval_seconds"] = time.perf_counter() - te
                row["valid"] = {k: v for k, v in valid.items() if k != "users"}
                score = valid[metric]
                improved = score > best
                if improved:
                    best, bad_evals, run.best_epoch = score, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                    run.valid = row["valid"]
                    if out is not None:
                        save_checkpoint(out / "model.pt", exp, model, split, epoch, row["valid"])
                else:
                    bad_evals += 1
                log(f"epoch {epoch:4d} | loss {row['loss']:.4f} | {row['train_seconds']:.1f}s "
                    f"+ eval {row['eval_seconds']:.1f}s | valid {_fmt(row['valid'])}"
                    f"{' *' if improved else ''}")
            if hist_fh is not None:
                hist_fh.write(json.dumps(_round(row)) + "\n")
                hist_fh.flush()
            run.history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if has_valid and exp.train.patience and bad_evals >= exp.train.patience:
                log(f"early stop: {metric} did not improve for {bad_evals} evaluations")
                break
    finally:
        if hist_fh is not None:
            hist_fh.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        run.best_epoch = run.history[-1]["epoch"]
        if out is not None:
            save_checkpoint(out / "model.pt", exp, model, split, run.best_epoch)
    run.test = {k: v for k, v in evaluate_model(model, graph, split, "test", exp.eval.topk,
                                                exp.eval.batch_users).items() if k != "users"}
    run.seconds = time.perf_counter() - t_start
    log(f"best epoch {run.best_epoch} | test {_fmt(run.test)} | {run.seconds:.1f}s")
    if out is not None:
        save_checkpoint(out / "model.pt", exp, model, split, run.best_epoch,
                        {"valid": run.valid, "test": run.test})
        with torch.no_grad():
            emb = model.propagate(graph)
        write_embeddings(out / "embeddings.npz", split, emb.user, emb.item)
        write_json(out / "result.json", run.result())
    return run


__all__ = ["fit", "Run", "TrainingDiverged", "train_one_epoch", "evaluate_model"]
