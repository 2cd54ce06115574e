"""GAN-based negative samplers: IRGAN and AdvIR's adversarial sampling (a generator picks j).

The recommender being trained (LightGCN, NGCF, MF) is the *discriminator* D: the trainer fits it
with the configured loss on (u, i, j), j drawn by the generator G (generator.py: an MF with item
bias, g(u, j) = <p_u, q_j> + b_j), which the sampler owns and trains itself. Like IRGAN's code
(`cf_gan.py`), the two players alternate in phases over whole epochs:

    D phase  (the trainer's epoch) each training pair (u, i) gets a negative drawn beforehand, per
             user, from p_T(j|u) = softmax(g(u, ·) / temperature) over u's non-train items
             (|P_u| draws per user from one softmax of that user).
    G phase  (`gen_epochs` epochs over all users, between two D epochs) per user, S·|P_u| draws
             j_s ~ p_θ(j|u) = softmax(g(u, ·)) over u's non-train items (S = gen_samples, IRGAN:
             2|P_u|), and L_G(u) = − mean_s log p_θ(j_s) · r(u, i_s, j_s)  (REINFORCE, no
             baseline), averaged over the users of a step, D frozen at its state after the D
             epoch:
                 irgan reward (IRGAN's item-recommendation code): r = 2 (σ(ŷ_uj) − 0.5)
                 advir reward (IRGAN's pair-wise code, which AdvIR builds on):
                     r = ln σ(ŷ_uj − ŷ_ui), i_s = the user's positives in turn
             ŷ = D's scores (pooled dot products, no gradient to D).

Both rewards grow with D's score of j, so G moves its mass to the items D ranks high: hard
negatives. G is first pre-trained, as IRGAN starts G from a DNS-trained MF; D epoch 1 then uses
the pre-trained G.

The schedule follows the trainer's `on_epoch_start(epoch, max_batches)` hook, called before every
epoch on every rank: the first call pre-trains G (skipped on resume: `load_state_dict` restores
G); each new epoch number makes the next `sample` call run the G phase (from epoch 2 on, with
D's embeddings of that batch: D as the previous epoch left it) and draw the epoch's negatives.
So G refreshes exactly once per epoch, whether each rank of a data-parallel run serves 1/world
of the pairs, an epoch is capped by train.max_batches, or the run was resumed (the state records
the epoch the negatives were drawn for). Under torchrun each rank owns and trains its own G
(seeded per rank, like its other negative draws); D's gradients are averaged as for every
sampler.

Cost: a few passes of users x items per epoch (not per training pair), in blocks of about 2^20
scores on CPU (2^24 on GPU), all inside the trainer's `sample_seconds`; pre-training runs at the
first epoch hook, outside it (`gen_pretrain_seconds`). On Gowalla (29,858 users x 40,981 items,
one CPU thread) a full G epoch and a full draw cost tens of seconds each. For smoke runs with
train.max_batches = m > 0 the generator honours the same cap: each pre-training epoch and G
epoch runs at most m batches (of pretrain_batch pairs, of gen_batch_users users), and D's
negatives are drawn only for the users the capped epoch serves, when first served (the same
distribution, since G is frozen during a D epoch). With m = 0 (default) nothing is capped.

Where we depart from the references (on purpose):
- Schedule: IRGAN's script runs 15 rounds of (100 D-epochs, negatives redrawn every 5; then 50
  G-epochs). Here a round is 1 D-epoch then `gen_epochs` (default 1) G-epochs, so that the
  trainer's early stopping and evaluation see the adversarial game from the first epochs.
- IRGAN's D is point-wise (sigmoid cross-entropy, positives vs G samples); here D is the
  trainer's model with its pair-wise loss (BPR in presets irgan/advir), which is how MixGCF and
  SDNS use IRGAN as a sampler for LightGCN.
- IRGAN's G draws from all items, and its G step mixes 20% of the user's positives into the
  proposal with importance weights p_θ/p_n; a negative sampler must not return positives, so
  every draw is restricted to non-train items and is on-policy (weights = 1).
- Optimiser: both IRGAN players use plain SGD (lr 0.001), one user per step.
  gen_optimizer = adam (presets irgan, advir): Adam (gen_lr 1e-3) on batches of
  `gen_batch_users` users, like the trainer's D, on the mean over the batch's users of IRGAN's
  per-user loss (the mean over that user's draws), so users with many positives do not
  dominate a step. Adam moves every coordinate by about gen_lr a step whatever the gradient's
  size: at T = 1 G sharpens as it learns (ml-100k: neg_prob 0.0007 -> 0.003 over 40 epochs)
  and D's validation score falls after its peak (tuned runs' best epochs: ml-100k 26-30,
  Tmall 12-22; docs/results). gen_optimizer = sgd (presets irgan-sgd, advir-sgd) is IRGAN's:
  plain SGD on the sum of the batch's per-user losses, a step of gen_lr per user (the per-user
  steps to first order); G then stays near its pre-trained distribution.
- Sizes: IRGAN's ML-100K G has dimension 5; the default gen_dim is the paper's d = 64.
- Pre-training (IRGAN `cf_dns.py`): MF without bias, BPR with DNS over 5 uniform candidates,
  per-pair SGD (lr 0.05, λ 0.1), 30 epochs. Here `pretrain_epochs` (default 10) epochs of
  mini-batch lazy (sparse) Adam (lr 0.01, batch 2048, the same per-pair λ 0.1) on the training
  pairs only (IRGAN's released D pre-training touches test data, its issue #34). G's bias stays
  0 in pre-training (the DNS model has none). λ sets G's score scale, hence how peaked
  softmax(g / 0.2) is. On the default synthetic data, λ = 1e-4 made a drawn negative's mean
  probability 0.55 (nearly always the user's top item) and 40% of the draws truly liked items;
  λ = 0.1 gives 0.008 and 18%, and a better G (valid recall@50 0.28 vs 0.22).
- AdvIR: its adversarial *sampling* is this IRGAN-style generator over unlabeled (non-clicked)
  items with the pair-wise reward; its adversarial *training* is the loss `adv_bpr`
  (losses.AdvBPR). AdvIR's exact item-recommendation settings (ε, temperature, G size,
  schedule) could not be verified from the paper; ours are the documented defaults.

Hyper-parameters. From the [sampler] config section (defaults there): temperature (D negatives
from softmax(g / T); IRGAN's code: 0.2), gen_dim (G's embedding size; IRGAN's ML-100K code: 5),
gen_lr (G's learning rate; IRGAN: SGD 1e-3), gen_optimizer (adam | sgd; IRGAN: sgd),
gen_samples (S; IRGAN: 2), gen_epochs (G epochs between two D epochs; IRGAN: 50 per 100 D
epochs), gen_pretrain_epochs (-> pretrain_epochs; 0 = none; IRGAN's cf_dns.py: 30).
Constructor arguments only (defaults here):
    pretrain_lr=1e-2       pre-training lazy-Adam learning rate (IRGAN: SGD 0.05)
    pretrain_reg=0.1       pre-training per-pair L2 λ (IRGAN: 0.1)
    pretrain_batch=2048    pairs per pre-training step (IRGAN: 1)
    pretrain_candidates=5  DNS candidates in pre-training (IRGAN: 5)
    gen_batch_users=256    users per G step (IRGAN: 1)
    gen_reg=0.0            L2 on G's rows in the G step (IRGAN: 0)
    init_delta=0.05        G init: uniform(±0.05) embeddings, zero bias (IRGAN's INIT_DELTA)
    max_chunk_scores=None  bound on one [users, n_items] score block (None: 2^20 on CPU, 2^24
                           on GPU); memory and speed only
Per-epoch stats: neg_score (D's mean score of the negatives it trained on), neg_prob (mean
probability of a drawn negative under p_T: how peaked the sampler is), gen_reward and gen_loss
(G phase means), gen_phase_seconds (time of the G phase + redraw, part of sample_seconds) and
once gen_pretrain_seconds.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..graph import InteractionGraph
from ..models import Embeddings
from .base import Negatives, Sampler, Tally, scores
from .generator import Generator, draw


GEN_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
"""sampler.gen_optimizer -> G's optimiser class (sgd also makes G's loss a sum over users)."""


class EpochNegatives:
    """D's negatives of one epoch, drawn from G ahead of time: user u owns |P_u| slots (its CSR
    range crow[u]:crow[u+1]) and is served them in turn (wrapping if revisited)."""

    def __init__(self, G: Generator):
        self.G = G
        dev = G.crow.device
        self.items = torch.zeros(G.col.numel(), dtype=torch.long, device=dev)  # [nnz]
        self.ptr = torch.zeros(G.deg.numel(), dtype=torch.long, device=dev)  # next slot, [U]
        self.fresh = torch.zeros(G.deg.numel(), dtype=torch.bool, device=dev)  # drawn, [U]

    def reset(self) -> None:
        self.ptr.zero_()
        self.fresh.zero_()

    def fill(self, users: torch.Tensor, temperature: float, generator: torch.Generator | None,
             tally: Tally) -> None:
        """Draw |P_u| negatives of each user from p_T(·|u) (their probabilities: neg_prob)."""
        for chunk in self.G.user_chunks(users):
            deg = self.G.deg[chunk]
            K = int(deg.max())
            with torch.no_grad():
                p = self.G.probabilities(chunk, temperature)  # [c, I]
                js = draw(p, K, generator)  # [c, K]
                valid = torch.arange(K, device=chunk.device).unsqueeze(0) < deg.unsqueeze(1)
                slots = self.G.crow[chunk].unsqueeze(1) + torch.arange(K, device=chunk.device)
                self.items[slots[valid]] = js[valid]
                tally.add("neg_prob", p.gather(1, js)[valid])
        self.fresh[users] = True

    def take(self, users: torch.Tensor) -> torch.Tensor:
        """Each row's user's next unused negative: items [B]."""
        order = torch.argsort(users, stable=True)
        su = users[order]
        uniq, counts = torch.unique_consecutive(su, return_counts=True)
        rank = torch.arange(su.numel(), device=su.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        slot = self.G.crow[su] + (self.ptr[su] + rank) % self.G.deg[su]
        items = torch.empty_like(users)
        items[order] = self.items[slot]
        self.ptr[uniq] += counts
        return items


class IRGANSampler(Sampler):
    """IRGAN (Wang et al., SIGIR 2017) as a negative sampler; see the module docstring.

    State: G and its optimiser, the epoch's negatives, `epoch` (the D epoch they were drawn for,
    None before the first) and `pending` (an announced epoch whose G phase + draw wait for the
    next `sample`, which brings D's embeddings)."""

    name = "irgan"

    def __init__(self, *, temperature: float, gen_dim: int, gen_lr: float, gen_samples: int,
                 gen_epochs: int, pretrain_epochs: int, gen_optimizer: str = "adam",
                 pretrain_lr: float = 1e-2,
                 pretrain_reg: float = 0.1, pretrain_batch: int = 2048,
                 pretrain_candidates: int = 5, gen_batch_users: int = 256, gen_reg: float = 0.0,
                 init_delta: float = 0.05, max_chunk_scores: int | None = None):
        super().__init__()
        self.temperature, self.gen_dim, self.gen_lr = float(temperature), gen_dim, gen_lr
        self.gen_samples, self.gen_epochs, self.gen_batch_users = (gen_samples, gen_epochs,
                                                                   gen_batch_users)
        self.gen_reg, self.init_delta, self.max_chunk_scores = gen_reg, init_delta, max_chunk_scores
        if gen_optimizer not in GEN_OPTIMIZERS:
            raise ValueError(f"gen_optimizer must be one of {', '.join(GEN_OPTIMIZERS)}, got "
                             f"{gen_optimizer!r}")
        self.gen_optimizer = gen_optimizer
        self.pretraining = {"epochs": pretrain_epochs, "lr": pretrain_lr, "reg": pretrain_reg,
                            "batch": pretrain_batch, "candidates": pretrain_candidates}
        self.G: Generator | None = None
        self.seconds: dict[str, float] = {}  # gen_pretrain_seconds, gen_phase_seconds

    @classmethod
    def from_config(cls, cfg, **kwargs) -> IRGANSampler:
        return cls(temperature=cfg.temperature, gen_dim=cfg.gen_dim, gen_lr=cfg.gen_lr,
                   gen_samples=cfg.gen_samples, gen_epochs=cfg.gen_epochs,
                   pretrain_epochs=cfg.gen_pretrain_epochs, gen_optimizer=cfg.gen_optimizer,
                   **kwargs)

    def reward(self, s_j: torch.Tensor, s_i: torch.Tensor) -> torch.Tensor:
        """r from D's scores s_j = ŷ_uj of the drawn items and s_i = ŷ_ui of the positives they
        are paired with (same shape): IRGAN's 2(σ(ŷ_uj) − 0.5)."""
        return 2.0 * (torch.sigmoid(s_j) - 0.5)

    # -- lifecycle --------------------------------------------------------------------------
    def setup(self, model, graph: InteractionGraph, split=None, device=None,
              generator: torch.Generator | None = None) -> None:
        """Create G on the graph's device; it is pre-trained at the first `on_epoch_start`,
        unless `load_state_dict` restores it first."""
        self.G = Generator(graph, self.gen_dim, self.init_delta, generator,
                           self.max_chunk_scores)
        self.opt = GEN_OPTIMIZERS[self.gen_optimizer](self.G.parameters(), lr=self.gen_lr)
        self.negatives = EpochNegatives(self.G)
        self.rng = generator
        self.epoch: int | None = None
        self.pending: int | None = None
        self.cap = 0  # max_batches of the current epoch (0: full epochs)

    def _require_setup(self) -> Generator:
        if self.G is None:
            raise RuntimeError(f"{type(self).__name__} needs setup(model, graph, ...) first")
        return self.G

    def on_epoch_start(self, epoch: int, max_batches: int = 0) -> None:
        """Announce D epoch `epoch`: the first announcement pre-trains G (unless resumed); a new
        epoch number makes the next `sample` run the G phase and draw the epoch's negatives.
        max_batches > 0 (smoke runs) caps G's epochs alike: each pre-training epoch and G epoch
        runs at most max_batches batches, and D's negatives are drawn only for the users the
        epoch serves, when first served."""
        G = self._require_setup()
        self.cap = max(0, int(max_batches))
        if self.epoch is None and self.pending is None:  # first call of a fresh run
            t = time.perf_counter()
            G.pretrain(**self.pretraining, generator=self.rng, max_batches=self.cap)
            self._add_seconds("gen_pretrain_seconds", t)
        if epoch != self.epoch:
            self.pending = epoch

    def train_generator(self, emb: Embeddings, generator: torch.Generator | None,
                        max_batches: int = 0) -> None:
        """One G epoch by policy gradient against D's current (detached) embeddings."""
        self.G.policy_gradient_epoch(emb.user.detach(), emb.item.detach(), self.reward, self.opt,
                                     self.gen_samples, self.gen_batch_users, self.gen_reg,
                                     generator, max_batches, self.tally,
                                     per_user_steps=self.gen_optimizer == "sgd")

    def _start_epoch(self, emb: Embeddings, generator: torch.Generator | None) -> None:
        """The G phase against D as it ended the previous epoch, then this epoch's draw."""
        t = time.perf_counter()
        if self.epoch is not None:
            for _ in range(self.gen_epochs):
                self.train_generator(emb, generator, self.cap)
        self.epoch, self.pending = self.pending, None
        self.negatives.reset()
        if not self.cap:
            self.negatives.fill(self.G.active, self.temperature, generator, self.tally)
        if self.G.active.is_cuda:
            torch.cuda.synchronize(self.G.active.device)
        self._add_seconds("gen_phase_seconds", t)

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        self._require_setup()
        if self.pending is not None:
            self._start_epoch(emb, generator)
        if self.epoch is None:
            raise RuntimeError(f"{type(self).__name__}: call on_epoch_start(epoch) before sample")
        if self.cap:  # capped epoch: draw for the users served for the first time this epoch
            uniq = torch.unique(users)
            need = uniq[~self.negatives.fresh[uniq]]
            if need.numel():
                t = time.perf_counter()
                self.negatives.fill(need, self.temperature, generator, self.tally)
                self._add_seconds("gen_phase_seconds", t)
        items = self.negatives.take(users)
        neg = emb.item[items]
        with torch.no_grad():
            self.tally.add("neg_score", scores(emb.user[users], neg))
        return Negatives(items, neg)

    def _add_seconds(self, key: str, since: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - since

    def stats(self) -> dict[str, float]:
        out = {**self.tally.read(), **self.seconds}
        self.seconds = {}
        return out

    # -- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """G's weights, its optimiser, the epoch's negatives and the epoch they were drawn for,
        for `train --resume`."""
        G, n = self._require_setup(), self.negatives
        return {"user_g": G.user.detach().cpu(), "item_g": G.item.detach().cpu(),
                "bias_g": G.bias.detach().cpu(), "opt": self.opt.state_dict(),
                "cache": n.items.cpu(), "ptr": n.ptr.cpu(), "fresh": n.fresh.cpu(),
                "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved, after `setup` (G counts as pre-trained then)."""
        G, n = self._require_setup(), self.negatives
        with torch.no_grad():
            G.user.copy_(state["user_g"])
            G.item.copy_(state["item_g"])
            G.bias.copy_(state["bias_g"])
        self.opt.load_state_dict(state["opt"])
        n.items.copy_(state["cache"])
        n.ptr.copy_(state["ptr"])
        n.fresh.copy_(state["fresh"])
        self.epoch, self.pending = state["epoch"], None


class AdvIRSampler(IRGANSampler):
    """AdvIR's adversarial sampling (Park & Chang, WWW 2019): IRGAN's generator over unlabeled
    (non-train) items with the pair-wise reward r = ln σ(ŷ_uj − ŷ_ui) of IRGAN's pair-wise code
    (`reward = log(sigmoid(neg_score - pos_score))`), which AdvIR's pair-wise variant builds on.
    Combine with loss adv_bpr (preset advir) for AdvIR's adversarial training."""

    name = "advir"

    def reward(self, s_j: torch.Tensor, s_i: torch.Tensor) -> torch.Tensor:
        """ln σ(ŷ_uj − ŷ_ui) from D's scores of the drawn items and of their paired positives."""
        return F.logsigmoid(s_j - s_i)
