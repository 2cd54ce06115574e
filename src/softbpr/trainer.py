"""The one training loop: `fit(experiment) -> Run`.

Per epoch (`train_one_epoch`): every training pair once, in an order shuffled by the seeded
generator, in batches of `batch_size` (the last batch may be smaller). Per batch:
    emb = model.propagate(graph)                       # full pass, with grad
    neg = sampler.sample(users, pos, emb, graph, gen)  # ids + pooled embeddings (with grad)
    L   = loss(e_u, e_i, e_j) + λ · l2(layer-0 rows of u, i, j; j only if the loss reads it)
Adam updates all parameters. The outer loop (`fit`) evaluates on validation every `eval_every`
epochs, keeps the best weights by `eval.metric` (`EarlyStopping`), stops after `patience`
evaluations without improvement or when `train.time_limit` has passed (`TimeBudget`), restores
the best weights and evaluates them on test. A non-finite loss stops training with
`TrainingDiverged`; the last good checkpoint on disk is kept. The run directory's files are
written through `RunDir` (rundir.py), rank 0 only.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import save_checkpoint, write_embeddings
from .config import Experiment
from .diagnostics import EpochStats, pair_keys
from .distributed import Dist
from .distributed import setup as dist_setup
from .evaluate import RankingTask, ranking_vectors, score_task
from .graph import InteractionGraph
from .losses import build_loss, gradient_weight, l2_penalty
from .memory import check_train
from .models import MF, build_model, candidate_scores
from .progress import ProgressLog
from .rundir import RunDir
from .samplers import build_sampler
from .seeding import Generators, make_generators
from .split import Split, load_split, require_test


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class StopRun(Exception):
    """Raised by an `on_epoch` callback to stop training cleanly after that epoch: the best
    weights are restored and tested and result.json records `stop_reason = reason` (e.g. a
    tuner pruning a trial: "pruned")."""

    def __init__(self, reason: str = "callback"):
        super().__init__(reason)
        self.reason = reason


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
    """epochs (train.epochs reached) | early_stop | time_limit | what a StopRun said."""
    valid_users: dict | None = None
    """When validation scored a seeded sample of users: {"sampled", "of", "seed"}."""

    def result(self) -> dict:
        return {"best_epoch": self.best_epoch, "valid": self.valid, "test": self.test,
                "seconds": round(self.seconds, 3), "method": self.experiment.method,
                "model": self.experiment.model.name, "dataset": self.split.name,
                "seed": self.experiment.train.seed, "epochs_run": len(self.history),
                "stop_reason": self.stop_reason,
                **({"valid_users": self.valid_users} if self.valid_users else {})}


class EarlyStopping:
    """The best validation score so far, its epoch, metrics and weights; `stop` once `patience`
    evaluations in a row brought no improvement (patience 0: never)."""

    def __init__(self, metric: str, patience: int):
        self.metric, self.patience = metric, patience
        self.best, self.best_epoch, self.bad_evals = -np.inf, 0, 0
        self.best_state: dict | None = None
        self.valid: dict = {}

    def update(self, epoch: int, valid: dict, model: torch.nn.Module) -> bool:
        """Record an evaluation; True when it improved on the best (weights are copied)."""
        if valid[self.metric] > self.best:
            self.best, self.best_epoch, self.bad_evals = valid[self.metric], epoch, 0
            self.best_state, self.valid = copy.deepcopy(model.state_dict()), valid
            return True
        self.bad_evals += 1
        return False

    @property
    def stop(self) -> bool:
        return bool(self.patience and self.bad_evals >= self.patience)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_state": self.best_state, "bad_evals": self.bad_evals,
                "best_epoch": self.best_epoch, "valid": self.valid}

    def load_state_dict(self, st: dict) -> None:
        self.best, self.best_state, self.bad_evals = st["best"], st["best_state"], st["bad_evals"]
        self.best_epoch, self.valid = st["best_epoch"], st["valid"]


class TimeBudget:
    """train.time_limit minutes of training, counting earlier sessions of a resumed run. With
    several ranks rank 0's clock decides for all (a rank stopping alone would hang the others in
    an all-reduce)."""

    def __init__(self, minutes: float, dist: Dist, device, spent: float = 0.0):
        self.minutes, self.dist, self.device = minutes, dist, device
        self.spent, self.t0 = spent, time.perf_counter()

    def elapsed(self) -> float:
        return self.spent + time.perf_counter() - self.t0

    def over(self) -> bool:
        if not self.minutes:
            return False
        over = self.elapsed() > 60.0 * self.minutes
        if self.dist.active:
            flag = torch.tensor([1.0 if over and self.dist.main else 0.0], dtype=torch.float64,
                                device=self.device)
            over = self.dist.all_sum(flag).item() > 0
        return over


@dataclass
class Parts:
    """What one training run is made of, built once by `build_parts`."""

    exp: Experiment
    split: Split
    graph: InteractionGraph
    model: MF
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    sampler: object
    loss: object
    optimizer: torch.optim.Optimizer
    gens: Generators
    train_u: torch.Tensor  # [n_train] user of each training pair
    train_i: torch.Tensor  # [n_train] its item
    watch: dict[str, torch.Tensor]  # false-negative diagnostics: name -> sorted pair keys
    dist: Dist = Dist()

    def state_dict(self) -> dict:
        """Everything that changes during training, for state.pt (EarlyStopping adds its own)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "shuffle_rng": self.gens.shuffle.get_state(),
                "sample_rng": self.dist.gather_objects(self.gens.sample.get_state()),
                "torch_rng": torch.get_rng_state(), "sampler": self.sampler.state_dict(),
                "fingerprint": self.fingerprint()}

    def load_state_dict(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.gens.shuffle.set_state(st["shuffle_rng"])
        self.gens.sample.set_state(st["sample_rng"][self.dist.rank])
        torch.set_rng_state(st["torch_rng"])
        if st.get("sampler"):
            self.sampler.load_state_dict(st["sampler"])

    def fingerprint(self) -> dict:
        """What a saved state must match to be resumed: data sizes and the training config
        (train.time_limit and checkpoint_every may change between sessions)."""
        d = self.exp.to_dict()
        d["train"] = {k: v for k, v in d["train"].items()
                      if k not in ("time_limit", "checkpoint_every", "device")}
        return {"n_users": self.split.n_users, "n_items": self.split.n_items,
                "n_train": len(self.split.train), "config": d}


def build_parts(exp: Experiment, split: Split, dist: Dist, device) -> Parts:
    gens = make_generators(exp.train.seed, device, dist.rank)
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, device)
    m = exp.model
    model = build_model(m.name, split.n_users, split.n_items, m.dim, m.layers, m.init,
                        gens.init, **m.options()).to(device)
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=None)
    opt = torch.optim.Adam(model.parameters(), lr=exp.train.lr, fused=True)  # 1 kernel/step
    # diagnostics: how often the chosen negative is a held-out positive / a planted preference
    watch = {}
    if len(split.valid) + len(split.test):
        watch["neg_heldout_rate"] = pair_keys(
            np.concatenate([split.valid.users, split.test.users]),
            np.concatenate([split.valid.items, split.test.items]), split.n_items, device)
    if split.truth is not None:
        t = split.truth.tocoo()
        watch["neg_truth_rate"] = pair_keys(t.row, t.col, split.n_items, device)
    parts = Parts(exp, split, graph, model, net, build_sampler(exp.sampler),
                  build_loss(exp.loss), opt, gens,
                  torch.from_numpy(split.train.users).to(device),
                  torch.from_numpy(split.train.items).to(device), watch, dist)
    # (on resume too: the sampler's RNG draws here are overwritten by load_state_dict)
    parts.sampler.setup(model, graph, split, device, gens.sample)
    parts.loss.setup(torch.bincount(parts.train_i, minlength=split.n_items))
    return parts


def _negative_ego(emb, neg) -> torch.Tensor:
    """The negatives' layer-0 rows for the L2 penalty, or rows whose squared norms sum to theirs.

    M negatives per pair ([B, M] ids) on a small catalogue repeat rows many times (ml-100k, M =
    32: 65,536 rows of 1,682 items): each distinct row is gathered once and scaled by sqrt(its
    count), so that Σ||row||² — the penalty and its gradient, count·2e — is the same sum of
    B·M terms without the [B, M, d] gather and its backward (float rounding aside)."""
    if neg.ego is not None:
        return neg.ego
    if neg.items.dim() < 2:
        return emb.ego_item_rows(neg.items)
    uniq, count = torch.unique(neg.items, return_counts=True)
    return emb.ego_item_rows(uniq) * count.to(emb.item.dtype).sqrt().unsqueeze(1)


def train_one_epoch(p: Parts, progress: bool = False, desc: str = "",
                    log: Callable[[str], None] | None = None) -> dict[str, float]:
    """One pass over all training pairs; returns per-epoch statistics (see history.jsonl).

    The epoch's order comes from p.gens.shuffle (seeded alike on every rank), negatives from
    p.gens.sample. With several ranks, every global batch of `batch_size` pairs is cut into
    `world` near-equal slices and this rank trains on its own slice; p.net (DDP) averages the
    gradients. A last global batch smaller than the number of ranks is skipped so that no rank
    gets an empty slice. train.max_batches > 0 stops the epoch after that many global batches.
    Without a terminal for the bar, `log` gets a line with an ETA every 30 s of a long epoch.
    """
    cfg, dist, model = p.exp.train, p.dist, p.model
    model.train()
    n, bs = p.train_u.numel(), cfg.batch_size
    perm = torch.randperm(n, device=p.graph.device, generator=p.gens.shuffle)
    n_batches = (n + bs - 1) // bs
    if dist.active and n - (n_batches - 1) * bs < dist.world:
        n_batches -= 1
    if cfg.max_batches:
        n_batches = min(n_batches, cfg.max_batches)
    stats = EpochStats(p.graph.device, p.graph.n_items, p.watch)
    sample_s, t0 = 0.0, time.perf_counter()
    bar = progress and sys.stderr.isatty()
    lines = ProgressLog(n_batches, desc, log, unit="batches") if log and not bar else None
    for b in tqdm(range(n_batches), desc=desc, leave=False,  # no bars in non-terminal logs
                  disable=not bar,
                  file=sys.stderr, unit="batch", dynamic_ncols=True):
        idx = perm[b * bs:(b + 1) * bs]
        if dist.active:
            idx = torch.tensor_split(idx, dist.world)[dist.rank]
        users, pos = p.train_u[idx], p.train_i[idx]
        emb = p.net(p.graph)  # model.propagate(graph), through DDP when distributed
        ts = time.perf_counter()
        neg = p.sampler.sample(users, pos, emb, p.graph, p.gens.sample)
        sample_s += time.perf_counter() - ts
        # row gathers whose backward hands the propagation only these rows (models.Embeddings)
        eu, ei = emb.user_rows(users), emb.item_rows(pos)  # [B, d']
        loss = p.loss.batch_loss(eu, ei, neg, emb.item, pos)
        rows = [emb.ego_user_rows(users), emb.ego_item_rows(pos)]
        # in-batch losses ignore the sampler's negatives: in the L2 term only when asked
        if p.loss.uses_sampled or cfg.reg_negatives == "always":
            rows.append(_negative_ego(emb, neg))
        penalty = l2_penalty(*rows)
        p.optimizer.zero_grad(set_to_none=True)
        (loss + cfg.reg * penalty).backward()
        p.optimizer.step()
        with torch.no_grad():
            pos_s = (eu * ei).sum(-1)  # [B]
            if neg.items is not None and neg.items.dim() == 2:  # [B, M], no [B, M, d] pass
                neg_s = candidate_scores(eu, emb.item, neg.items)
            elif neg.emb.dim() == 2:
                neg_s = (eu * neg.emb).sum(-1)  # [B]
            else:
                neg_s = torch.bmm(neg.emb, eu.unsqueeze(2)).squeeze(2)
            gap = (pos_s.unsqueeze(1) if neg_s.dim() == 2 else pos_s) - neg_s  # ŷ_ui − ŷ_uj
            stats.add(users, loss, penalty, gap, gradient_weight(gap, p.loss.alpha), neg.items)
        if lines is not None:
            lines(b + 1)
    out = {**stats.read(dist), "train_seconds": time.perf_counter() - t0,
           "sample_seconds": sample_s}
    out.update(p.sampler.stats())
    return out


def evaluate_model(model: MF, graph: InteractionGraph, split: Split, which: str,
                   ks, batch_users: int = 0, dist: Dist = Dist(),
                   cache: dict | None = None,
                   log: Callable[[str], None] | None = None, sample: int = 0,
                   seed: int = 0, rank_by: str = "dot") -> dict[str, float]:
    """Full-ranking metrics on split.valid ('valid', train masked) or split.test ('test', train
    and valid masked). See evaluate.rank_metrics for the definitions. With several ranks each
    scores a share of the users and the means are combined exactly (weighted by user counts).
    `cache` (a dict owned by the caller) keeps the prepared masks/truth between evaluations.
    `log` gets a progress line with an ETA every 30 s of a long evaluation. sample > 0: score a
    seeded sample of that many users on 'valid' (evaluate.RankingTask.build), never on 'test'."""
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
        task = RankingTask.build(truth, mask, graph.device, (dist.rank, dist.world),
                                 sample=sample if which == "valid" else 0, seed=seed)
        if task.sampled and log:
            log(f"validation on a seeded sample of {sample:,} of the {task.n_total:,} users "
                "(eval.valid_users; the test scores all)")
        if cache is not None:
            cache[which] = task
    lines = ProgressLog(task.users.numel(), f"evaluate {which}", log, unit="users") if log \
        else None
    res = score_task(task, *ranking_vectors(emb.user, emb.item, rank_by), ks,
                     batch_users or None, lines)
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


def _eta(budget: TimeBudget, epoch: int, first: int, last: int) -> str:
    """'elapsed 1m02s, ETA 3m10s' for the epochs left at the mean pace of this session."""
    def hms(s: float) -> str:
        s = int(s)
        return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
    done = epoch - first + 1
    pace = (time.perf_counter() - budget.t0) / max(done, 1)
    left = pace * (last - epoch)
    if budget.minutes:
        left = min(left, max(0.0, 60.0 * budget.minutes - budget.elapsed()))
    return f"elapsed {hms(budget.elapsed())}, ETA {hms(left)}"


def _with_new_defaults(saved: dict | None, now: dict) -> dict | None:
    """A saved fingerprint with the config fields added to softbpr since it was written (in
    `now` but not in `saved`) filled in from `now` where `now` holds their default: a new option
    left off does not change a saved run."""
    if saved is None:
        return None
    default = Experiment().to_dict()
    config = dict(saved["config"])
    for s, fields_now in now["config"].items():
        if isinstance(fields_now, dict) and isinstance(config.get(s), dict):
            config[s] = {**{k: v for k, v in fields_now.items()
                            if k not in config[s] and v == default[s].get(k)}, **config[s]}
    return {**saved, "config": config}


def _resume(parts: Parts, stopper: EarlyStopping, rd: RunDir, write: bool, log) -> tuple:
    """Load state.pt into parts/stopper -> (first epoch, seconds spent, history rows kept)."""
    if write:  # a run killed mid-write (SIGKILL) may leave a temp file; the target is intact
        rd.clear_temp()
    st = rd.load_state()
    now = parts.fingerprint()
    saved = _with_new_defaults(st.get("fingerprint"), now)
    if saved is not None and saved != now:
        diff = [k for k in ("n_users", "n_items", "n_train") if saved.get(k) != now[k]]
        for s in now["config"]:
            if s != "method":
                diff += [f"{s}.{k}" for k, v in now["config"][s].items()
                         if saved["config"].get(s, {}).get(k) != v]
        raise ValueError(f"{rd.state_path}: the saved training state does not match this run's "
                         f"config or data ({', '.join(diff[:6])} differ); start a new run "
                         f"(another --out, or --overwrite to replace it)")
    parts.load_state_dict(st)
    stopper.load_state_dict(st)
    first = st["epoch"] + 1
    history = rd.truncate_history(first) if write else \
        [r for r in rd.read_history() if r["epoch"] < first]
    log(f"resuming {rd.path} at epoch {first}")
    return first, st["elapsed"], history


def fit(exp: Experiment, split: Split | None = None, out_dir: str | Path | None = None,
        log: Callable[[str], None] = print, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None, resume: bool = False,
        overwrite: bool = False) -> Run:
    """Train `exp` (loading its data unless `split` is given); write outputs to `out_dir`.

    Files in out_dir (rank 0 only, see rundir.py): config.json, history.jsonl (one row per
    epoch), model.pt (best weights so far), state.pt (the full training state, every
    `train.checkpoint_every` epochs), result.json and embeddings.npz (at the end).
    A non-empty out_dir is refused (FileExistsError, before the data is loaded) unless
    `overwrite` (its old training state is then removed) or `resume`.
    resume=True continues from out_dir/state.pt (a run directory without one starts afresh);
    with the same seed the result is the same as that of an uninterrupted run. on_epoch(row) is
    called after every epoch and may raise StopRun to end training cleanly.
    Launched by torchrun with several processes, training is data-parallel (distributed.py).
    """
    dist, device = dist_setup(exp.train.device)
    if not dist.main:
        log, progress = (lambda s: None), False
    if out_dir is not None and dist.main and not resume:
        RunDir(out_dir).check_new(overwrite)
    split = split if split is not None else load_split(exp.data, log)
    log(split.summary())
    require_test(split)  # test metrics would be NaN: an error naming the cause
    check_train(split, exp.model.dim, exp.model.name, exp.model.layers, log)  # fits? else stop
    if (big := [k for k in exp.eval.topk if k >= split.n_items]):
        log(f"note: eval.topk {','.join(map(str, big))} >= the {split.n_items:,} items: every "
            f"item is in the top-K, so recall@{big[0]} is 1 for every user")
    p = build_parts(exp, split, dist, device)
    rd = RunDir(out_dir) if out_dir is not None else None
    write = rd is not None and dist.main
    run, stopper = Run(exp, split, p.model, p.graph, out_dir=rd and rd.path), \
        EarlyStopping(exp.eval.metric, exp.train.patience)
    first, spent = 1, 0.0
    if resume and rd is not None and rd.has_state():
        first, spent, run.history = _resume(p, stopper, rd, write, log)
    elif write:
        rd.create({**exp.to_dict(), "dataset_notes": list(split.notes), "device": str(device),
                   "world_size": dist.world}, overwrite=overwrite or resume)
    budget, eval_cache, last = TimeBudget(exp.train.time_limit, dist, device, spent), {}, \
        exp.train.epochs
    has_valid = len(split.valid) > 0
    if not has_valid:
        log("no validation pairs: training all epochs and keeping the last one")
    stop = has_valid and stopper.stop
    for epoch in range(first, last + 1):
        if stop:
            break
        p.sampler.on_epoch_start(epoch, max_batches=exp.train.max_batches)
        row = {"epoch": epoch, **train_one_epoch(p, progress, f"epoch {epoch}", log)}
        if not np.isfinite(row["loss"]):
            if write:
                rd.append_history(_round(row))
            kept = (f"model.pt keeps the best validated weights (epoch {stopper.best_epoch})"
                    if stopper.best_epoch else "no model.pt was written (nothing validated yet)")
            raise TrainingDiverged(f"epoch {epoch}: the loss is {row['loss']} (non-finite); "
                                   f"stopped. Try a lower lr (now {exp.train.lr}) or reg; {kept}.")
        out_of_time = epoch != last and budget.over()
        line = f"epoch {epoch:4d} | loss {row['loss']:.4f} | {row['train_seconds']:.1f}s"
        if has_valid and (epoch % exp.train.eval_every == 0 or epoch == last or out_of_time):
            te = time.perf_counter()
            valid = evaluate_model(p.model, p.graph, split, "valid", exp.eval.topk,
                                   exp.eval.batch_users, dist, eval_cache, log,
                                   exp.eval.valid_users, exp.data.seed, exp.eval.rank_by)
            if eval_cache["valid"].sampled:
                run.valid_users = {"sampled": exp.eval.valid_users,
                                   "of": eval_cache["valid"].n_total, "seed": exp.data.seed}
            row["eval_seconds"] = time.perf_counter() - te
            row["valid"] = {k: v for k, v in valid.items() if k != "users"}
            improved = stopper.update(epoch, row["valid"], p.model)
            if improved and write:
                save_checkpoint(rd.model_path, exp, p.model, split, epoch, row["valid"])
            line += f" + eval {row['eval_seconds']:.1f}s | valid {_fmt(row['valid'])}" + \
                (" *" if improved else "")
        log(f"{line} | {_eta(budget, epoch, first, last)}")
        stop = (has_valid and stopper.stop) or out_of_time
        if write:
            rd.append_history(_round(row))
        run.history.append(row)
        if rd is not None and (epoch % exp.train.checkpoint_every == 0 or epoch == last or stop):
            st = {"epoch": epoch, **p.state_dict(), **stopper.state_dict(),
                  "elapsed": budget.elapsed()}  # (state_dict gathers RNGs on every rank)
            if write:
                rd.save_state(st)
        try:
            if on_epoch is not None:
                on_epoch(row)
        except StopRun as e:
            run.stop_reason, stop = e.reason, True
            log(f"stopped after epoch {epoch}: {e.reason}")
            continue
        if out_of_time:
            run.stop_reason = "time_limit"
            log(f"time limit: {exp.train.time_limit:g} min passed after epoch {epoch}; "
                f"stopping with the best weights so far")
        elif stop:
            run.stop_reason = "early_stop"
            log(f"early stop: {exp.eval.metric} did not improve for {stopper.bad_evals} "
                f"evaluations")
    return _finish(run, p, stopper, rd if write else None, budget, log)


def _finish(run: Run, p: Parts, stopper: EarlyStopping, rd: RunDir | None, budget: TimeBudget,
            log) -> Run:
    """Restore the best weights, test them, write model.pt, embeddings.npz and result.json."""
    exp, split = run.experiment, run.split
    run.best_epoch, run.valid = stopper.best_epoch, stopper.valid
    if stopper.best_state is not None:
        p.model.load_state_dict(stopper.best_state)
    else:
        run.best_epoch = run.history[-1]["epoch"] if run.history else 0
    run.test = {k: v for k, v in evaluate_model(p.model, p.graph, split, "test", exp.eval.topk,
                                                exp.eval.batch_users, p.dist, log=log,
                                                rank_by=exp.eval.rank_by).items()
                if k != "users"}
    run.seconds = budget.elapsed()
    log(f"best epoch {run.best_epoch} | test {_fmt(run.test)} | {run.seconds:.1f}s")
    if rd is not None:
        save_checkpoint(rd.model_path, exp, p.model, split, run.best_epoch,
                        {"valid": run.valid, "test": run.test})
        with torch.no_grad():
            emb = p.model.propagate(p.graph)
        write_embeddings(rd.embeddings_path, split,
                         *ranking_vectors(emb.user, emb.item, exp.eval.rank_by))
        rd.write_result(run.result())
    p.dist.barrier()
    return run


__all__ = ["EarlyStopping", "Parts", "Run", "StopRun", "TimeBudget", "TrainingDiverged",
           "build_parts", "evaluate_model", "fit", "train_one_epoch"]
