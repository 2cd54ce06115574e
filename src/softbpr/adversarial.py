"""GAN-based negative samplers: IRGAN and AdvIR's adversarial sampling (a generator picks j).

The recommender being trained (LightGCN, NGCF, MF) is the *discriminator* D: the trainer fits it
with the configured loss on (u, i, j), j drawn by the generator G. G is a separate MF with item
bias, g(u, j) = <p_u, q_j> + b_j, which this sampler owns and trains itself. Like IRGAN's code
(`cf_gan.py`), the two players alternate in phases over whole epochs:

    D phase  (the trainer's epoch) each training pair (u, i) gets a negative drawn beforehand, per
             user, from p_T(j|u) = softmax(g(u, ·) / temperature) over u's non-train items
             (`generate_for_d`: |P_u| draws per user from one softmax of that user).
    G phase  (`gen_epochs` epochs over all users, between two D epochs) per user, S·|P_u| draws
             j_s ~ p_θ(j|u) = softmax(g(u, ·)) over u's non-train items (S = gen_samples, IRGAN:
             2|P_u|), and L_G = − mean_s log p_θ(j_s) · r(u, i_s, j_s)  (REINFORCE, no
             baseline), D frozen at its state after the D epoch:
                 irgan reward (IRGAN's item-recommendation code): r = 2 (σ(ŷ_uj) − 0.5)
                 advir reward (IRGAN's pair-wise code, which AdvIR builds on):
                     r = ln σ(ŷ_uj − ŷ_ui), i_s = the user's positives in turn
             ŷ = D's scores (pooled dot products, no gradient to D).

Both rewards grow with D's score of j, so G moves its mass to the items D ranks high: hard
negatives. `setup` first pre-trains G, as IRGAN starts G from a DNS-trained MF; D epoch 1 then uses
the pre-trained G. The sampler sees no epoch boundary, so it counts pairs: after every n_train
sampled pairs (one trainer epoch) it runs the G phase and redraws the negatives. Cost: a few
passes of users x items per epoch (not per training pair), all inside the trainer's
`sample_seconds`.

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
- Optimiser: both IRGAN players use plain SGD (lr 0.001), one user per step; G uses Adam here
  (gen_lr 1e-3) on batches of `gen_batch_users` users, like the trainer's D.
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

Hyper-parameters (constructor arguments; the first six are config fields of [sampler]):
    temperature=0.2      D negatives from softmax(g / T) (IRGAN's code: 0.2)
    gen_dim=64           G embedding size
    gen_lr=1e-3          G Adam learning rate (policy gradient)
    gen_samples=2        S: G draws per positive in the G phase (IRGAN: 2)
    gen_epochs=1         G epochs between two D epochs
    pretrain_epochs=10   DNS-BPR pre-training epochs of G (0 = none)
    pretrain_lr=1e-2, pretrain_reg=0.1, pretrain_batch=2048, pretrain_candidates=5
    gen_batch_users=256  users per G step
    gen_reg=0.0          L2 on G's rows in the G step (IRGAN: 0)
    init_delta=0.05      G init: uniform(±0.05) embeddings, zero bias (IRGAN's INIT_DELTA)
Per-epoch stats: neg_score (D's mean score of the negatives it trained on), neg_prob (mean
probability of a drawn negative under p_T: how peaked the sampler is), gen_reward and gen_loss
(G phase means), gen_phase_seconds (time of the G phase + redraw, part of sample_seconds) and
once gen_pretrain_seconds.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .graph import InteractionGraph
from .models import Embeddings
from .samplers import Negatives, Tally, uniform_candidates


def draw(probs: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k independent draws per row of probs [c, n] (rows sum to 1) -> [c, k] int64.

    Inverse-CDF sampling: one uniform per draw and a binary search in the row's float64 CDF;
    zero-probability entries (masked positives) have empty intervals and are never drawn. Same
    distribution as torch.multinomial(..., replacement=True), several times faster on CPU for
    k = 1 (multinomial then draws an exponential per entry).
    """
    cdf = probs.double().cumsum(-1)  # [c, n]
    u = torch.rand(probs.shape[0], k, dtype=torch.float64, device=probs.device,
                   generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[1] - 1)


class IRGANSampler:
    """IRGAN (Wang et al., SIGIR 2017) as a negative sampler; see the module docstring."""

    name = "irgan"
    reward_kind = "pointwise"

    def __init__(self, temperature: float = 0.2, gen_dim: int = 64, gen_lr: float = 1e-3,
                 gen_samples: int = 2, gen_epochs: int = 1, pretrain_epochs: int = 10,
                 pretrain_lr: float = 1e-2, pretrain_reg: float = 0.1,
                 pretrain_batch: int = 2048, pretrain_candidates: int = 5,
                 gen_batch_users: int = 256, gen_reg: float = 0.0, init_delta: float = 0.05,
                 max_chunk_scores: int = 1 << 24):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if min(gen_dim, gen_samples, gen_batch_users) < 1 or min(gen_epochs,
                                                                 pretrain_epochs) < 0:
            raise ValueError("gen_dim, gen_samples, gen_batch_users must be >= 1; gen_epochs "
                             "and pretrain_epochs >= 0")
        self.temperature, self.gen_dim, self.gen_lr = float(temperature), gen_dim, gen_lr
        self.gen_samples, self.gen_epochs, self.pretrain_epochs = (gen_samples, gen_epochs,
                                                                   pretrain_epochs)
        self.pretrain_lr, self.pretrain_reg = pretrain_lr, pretrain_reg
        self.pretrain_batch, self.pretrain_candidates = pretrain_batch, pretrain_candidates
        self.gen_batch_users, self.gen_reg, self.init_delta = gen_batch_users, gen_reg, init_delta
        self.max_chunk_scores = max_chunk_scores  # bounds every [users, n_items] score block
        self.user_g = self.item_g = self.bias_g = None
        self.tally = Tally()
        self._once: dict[str, float] = {}
        self._phase_s = 0.0

    # -- generator --------------------------------------------------------------------------
    def setup(self, model, graph: InteractionGraph, split=None, device=None,
              generator: torch.Generator | None = None) -> None:
        """Create G on the graph's device and pre-train it (DNS-BPR) on the training pairs."""
        dev = graph.device
        U, I, d = graph.n_users, graph.n_items, self.gen_dim

        def uniform(n):  # IRGAN init: U(-δ, δ)
            w = torch.empty(n, d, device=dev)
            w.uniform_(-self.init_delta, self.init_delta, generator=generator)
            return w.requires_grad_(True)

        self.user_g, self.item_g = uniform(U), uniform(I)
        self.bias_g = torch.zeros(I, device=dev, requires_grad=True)
        R = graph.train_csr
        self._crow = torch.from_numpy(R.indptr.astype("int64")).to(dev)
        self._col = torch.from_numpy(R.indices.astype("int64")).to(dev)
        self._deg = self._crow[1:] - self._crow[:-1]  # [U] training positives per user
        self._active = torch.nonzero(self._deg).squeeze(1)  # users with positives
        self._n_pairs = len(split.train) if split is not None else R.nnz
        self._cache = torch.zeros(R.nnz, dtype=torch.long, device=dev)  # D negatives, CSR slots
        self._ptr = torch.zeros(U, dtype=torch.long, device=dev)  # next unused slot per user
        self._used: int | None = None  # pairs served since the last redraw (None: none yet)
        t = time.perf_counter()
        self._pretrain(graph, generator)
        self._once["gen_pretrain_seconds"] = time.perf_counter() - t
        self.opt = torch.optim.Adam([self.user_g, self.item_g, self.bias_g], lr=self.gen_lr)

    def _pretrain(self, graph: InteractionGraph, generator) -> None:
        if self.pretrain_epochs == 0:
            return
        dev = graph.device
        R = graph.train_csr.tocoo()
        pu = torch.from_numpy(R.row.astype("int64")).to(dev)
        pi = torch.from_numpy(R.col.astype("int64")).to(dev)
        P, Q = self.user_g, self.item_g
        # sparse row gradients + lazy Adam: a step costs O(batch), not O(table)
        opt = torch.optim.SparseAdam([P, Q], lr=self.pretrain_lr)
        bs = self.pretrain_batch
        for _ in range(self.pretrain_epochs):
            perm = torch.randperm(pu.numel(), device=dev, generator=generator)
            for s in range(0, pu.numel(), bs):
                u, i = pu[perm[s:s + bs]], pi[perm[s:s + bs]]
                cand = uniform_candidates(graph, u, self.pretrain_candidates, generator)
                with torch.no_grad():  # DNS: the candidate the current MF scores highest
                    sc = (P[u].unsqueeze(1) * Q[cand]).sum(-1)  # [b, 5]
                    j = cand.gather(1, sc.argmax(1, keepdim=True)).squeeze(1)
                eu = F.embedding(u, P, sparse=True)
                ei, ej = F.embedding(i, Q, sparse=True), F.embedding(j, Q, sparse=True)
                loss = -F.logsigmoid((eu * (ei - ej)).sum(-1)).mean() + self.pretrain_reg * (
                    eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / 2 / u.numel()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        P.grad = Q.grad = None

    def _train_mask(self, users: torch.Tensor) -> torch.Tensor:
        """Bool [c, n_items]: True at each row user's training positives."""
        deg = self._deg[users]  # [c]
        rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), deg)
        first = torch.repeat_interleave(self._crow[users], deg)
        offs = torch.arange(rows.numel(), device=users.device) - torch.repeat_interleave(
            torch.cumsum(deg, 0) - deg, deg)
        mask = torch.zeros(users.numel(), self.item_g.shape[0], dtype=torch.bool,
                           device=users.device)
        mask[rows, self._col[first + offs]] = True
        return mask

    def generator_logits(self, users: torch.Tensor) -> torch.Tensor:
        """g(u, j) for every item, −inf at u's training positives: [c, n_items] (with grad)."""
        logits = self.user_g[users] @ self.item_g.T + self.bias_g  # [c, I]
        return logits.masked_fill(self._train_mask(users), float("-inf"))

    def probabilities(self, users: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """softmax(g(u, ·) / T) over items (0 at training positives), [c, n_items], no grad."""
        with torch.no_grad():
            return torch.softmax(self.generator_logits(users) / temperature, -1)

    def _user_chunks(self, users: torch.Tensor, size: int):
        c = max(1, min(size, self.max_chunk_scores // self.item_g.shape[0]))
        return torch.split(users, c)

    def reward(self, d_scores: torch.Tensor, pos: torch.Tensor, items: torch.Tensor):
        """r(u, i, j) for draws items [c, K] from D's scores of the chunk's users [c, n_items]:
        2(σ(ŷ_uj) − 0.5). pos [c, K] pairs each draw with one of the user's positives."""
        return 2.0 * (torch.sigmoid(d_scores.gather(1, items)) - 0.5)

    def train_generator(self, emb: Embeddings, generator: torch.Generator | None) -> None:
        """One G epoch: every user with positives, in shuffled batches of gen_batch_users."""
        d_user, d_item = emb.user.detach(), emb.item.detach()
        S = self.gen_samples
        order = self._active[torch.randperm(self._active.numel(), device=self._active.device,
                                            generator=generator)]
        for users in self._user_chunks(order, self.gen_batch_users):
            deg = self._deg[users]  # [c]
            K = S * int(deg.max())
            logits = self.generator_logits(users)  # [c, I], grad to G
            with torch.no_grad():
                js = draw(torch.softmax(logits.detach(), -1), K, generator)  # [c, K] from p_θ
                k = torch.arange(K, device=users.device)
                valid = k.unsqueeze(0) < S * deg.unsqueeze(1)  # S·|P_u| draws per user
                slot = self._crow[users].unsqueeze(1) + k.unsqueeze(0) % deg.unsqueeze(1)
                pos = self._col[slot]  # [c, K]: the user's positives in turn
                r = self.reward(d_user[users] @ d_item.T, pos, js)  # [c, K]
                w = valid.float() / valid.sum()
            logp = torch.log_softmax(logits, -1).gather(1, js)  # [c, K]
            loss = -(logp * r * w).sum()
            if self.gen_reg:
                loss = loss + self.gen_reg * (self.user_g[users].pow(2).sum()
                                              + self.item_g[js[valid]].pow(2).sum()) / 2 / len(
                                                  users)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.tally.add("gen_reward", r[valid])
            self.tally.add("gen_loss", -(logp.detach() * r)[valid])

    def redraw(self, generator: torch.Generator | None) -> None:
        """D's negatives for the next epoch: |P_u| draws from p_T(·|u) for every user."""
        for users in self._user_chunks(self._active, 1 << 30):
            deg = self._deg[users]
            K = int(deg.max())
            with torch.no_grad():
                p = self.probabilities(users, self.temperature)  # [c, I]
                js = draw(p, K, generator)  # [c, K]
                valid = torch.arange(K, device=users.device).unsqueeze(0) < deg.unsqueeze(1)
                slots = self._crow[users].unsqueeze(1) + torch.arange(K, device=users.device)
                self._cache[slots[valid]] = js[valid]
                self.tally.add("neg_prob", p.gather(1, js)[valid])
        self._ptr.zero_()
        self._used = 0

    # -- sampler seam -----------------------------------------------------------------------
    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        if self.user_g is None:
            raise RuntimeError(f"{type(self).__name__} needs setup(model, graph, ...) first")
        if self._used is None or self._used >= self._n_pairs:  # a new trainer epoch
            t = time.perf_counter()
            if self._used is not None:  # G phase against D as it ended the epoch
                for _ in range(self.gen_epochs):
                    self.train_generator(emb, generator)
            self.redraw(generator)
            if users.is_cuda:
                torch.cuda.synchronize(users.device)
            self._phase_s += time.perf_counter() - t
        # take each row's user's next unused pre-drawn negative (wrapping if a user is revisited)
        order = torch.argsort(users, stable=True)
        su = users[order]
        uniq, counts = torch.unique_consecutive(su, return_counts=True)
        rank = torch.arange(su.numel(), device=su.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        slot = self._crow[su] + (self._ptr[su] + rank) % self._deg[su]
        items = torch.empty_like(users)
        items[order] = self._cache[slot]
        self._ptr[uniq] += counts
        self._used += users.numel()
        neg = emb.item[items]
        with torch.no_grad():
            self.tally.add("neg_score", (emb.user[users] * neg).sum(-1))
        return Negatives(items, neg)

    def state_dict(self) -> dict:
        """G's weights, its optimiser and the served-negative cache, for `train --resume`."""
        return {"user_g": self.user_g.detach().cpu(), "item_g": self.item_g.detach().cpu(),
                "bias_g": self.bias_g.detach().cpu(), "opt": self.opt.state_dict(),
                "cache": self._cache.cpu(), "ptr": self._ptr.cpu(), "used": self._used}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved, after `setup` built G on its device."""
        with torch.no_grad():
            for name in ("user_g", "item_g", "bias_g"):
                getattr(self, name).copy_(state[name])
        self.opt.load_state_dict(state["opt"])
        self._cache.copy_(state["cache"])
        self._ptr.copy_(state["ptr"])
        self._used = state["used"]

    def end_epoch(self) -> None:
        """End the discriminator epoch now: the next sample() runs the G phase and redraws (for
        callers whose epochs do not visit every training pair, e.g. a timing on a few batches)."""
        if self._used is not None:
            self._used = self._n_pairs

    def stats(self) -> dict[str, float]:
        out = {**self.tally.read(), **self._once}
        if self._phase_s:
            out["gen_phase_seconds"] = self._phase_s  # G epochs + redraw: once per epoch
        self._once, self._phase_s = {}, 0.0
        return out


class AdvIRSampler(IRGANSampler):
    """AdvIR's adversarial sampling (Park & Chang, WWW 2019): IRGAN's generator over unlabeled
    (non-train) items with the pair-wise reward r = ln σ(ŷ_uj − ŷ_ui) of IRGAN's pair-wise code
    (`reward = log(sigmoid(neg_score - pos_score))`), which AdvIR's pair-wise variant builds on.
    Combine with loss adv_bpr (preset advir) for AdvIR's adversarial training."""

    name = "advir"
    reward_kind = "pairwise"

    def reward(self, d_scores: torch.Tensor, pos: torch.Tensor, items: torch.Tensor):
        return F.logsigmoid(d_scores.gather(1, items) - d_scores.gather(1, pos))
