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

Epoch boundaries come from the trainer: it calls `on_epoch_start(epoch, max_batches)` before
every epoch, on every rank. The first call pre-trains G (skipped on resume: `load_state_dict`
restores G); each new epoch number makes the next `sample` call run the G phase (from epoch 2 on,
with D's embeddings of that batch: D as the previous epoch left it) and draw the epoch's
negatives. So G refreshes exactly once per epoch, whether each rank of a data-parallel run
serves 1/world of the pairs, an epoch is capped by train.max_batches, or the run was resumed (the
state records the epoch the cache was drawn for). Callers without the hook (tests, bench) get
epoch 1 at their first `sample` and end an epoch with `end_epoch()`. Under torchrun each rank
owns and trains its own G (seeded per rank, like its other negative draws); D's gradients are
averaged as for every sampler.

Cost: a few passes of users x items per epoch (not per training pair), in blocks of about 2^20
scores on CPU (2^24 on GPU), all inside the trainer's `sample_seconds`; pre-training runs before
epoch 1, outside it (`gen_pretrain_seconds`). On Gowalla (29,858 users x 40,981 items, one CPU
thread) a full G epoch and a full draw cost tens of seconds each. For smoke runs with
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
- Optimiser: both IRGAN players use plain SGD (lr 0.001), one user per step; G uses Adam here
  (gen_lr 1e-3) on batches of `gen_batch_users` users, like the trainer's D. The step's loss is
  the mean over its users of IRGAN's per-user loss (the mean over that user's draws), so users
  with many positives do not dominate a step.
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

Hyper-parameters (constructor arguments with their defaults; the first six are config fields
of [sampler]: temperature, gen_dim, gen_lr, gen_samples, gen_epochs, gen_pretrain_epochs):
    temperature=0.2        D negatives from softmax(g / T) (IRGAN's code: 0.2)
    gen_dim=64             G embedding size (IRGAN's ML-100K code: 5)
    gen_lr=1e-3            G Adam learning rate (policy gradient; IRGAN: SGD 1e-3)
    gen_samples=2          S: G draws per positive in the G phase (IRGAN: 2)
    gen_epochs=1           G epochs between two D epochs (IRGAN: 50 per 100 D epochs)
    pretrain_epochs=10     DNS-BPR pre-training epochs of G (0 = none; IRGAN's cf_dns.py: 30)
    pretrain_lr=1e-2       pre-training lazy-Adam learning rate (IRGAN: SGD 0.05)
    pretrain_reg=0.1       pre-training per-pair L2 λ (IRGAN: 0.1)
    pretrain_batch=2048    pairs per pre-training step (IRGAN: 1)
    pretrain_candidates=5  DNS candidates in pre-training (IRGAN: 5)
    gen_batch_users=256    users per G step (IRGAN: 1)
    gen_reg=0.0            L2 on G's rows in the G step (IRGAN: 0)
    init_delta=0.05        G init: uniform(±0.05) embeddings, zero bias (IRGAN's INIT_DELTA)
    max_chunk_scores=None  bound on one [users, n_items] score block (None: 2^20 on CPU, 2^24
                           on GPU); memory and speed only, the results do not depend on it
                           beyond the random stream
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
                 max_chunk_scores: int | None = None):
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
        """Create G on the graph's device. Pre-training (DNS-BPR on the training pairs) follows
        at the first `on_epoch_start` (or `sample`), unless `load_state_dict` restores G first."""
        dev = graph.device
        U, I, d = graph.n_users, graph.n_items, self.gen_dim

        def uniform(n):  # IRGAN init: U(-δ, δ)
            w = torch.empty(n, d, device=dev)
            w.uniform_(-self.init_delta, self.init_delta, generator=generator)
            return w.requires_grad_(True)

        self.user_g, self.item_g = uniform(U), uniform(I)
        self.bias_g = torch.zeros(I, device=dev, requires_grad=True)
        self._graph, self._gen = graph, generator
        # score blocks of 2^20 entries keep a CPU's working set in cache (2^24: 2.5x slower
        # on Gowalla); on a GPU larger blocks mean fewer kernel launches
        self._chunk = self.max_chunk_scores or (1 << 24 if dev.type == "cuda" else 1 << 20)
        R = graph.train_csr
        self._crow = torch.from_numpy(R.indptr.astype("int64")).to(dev)
        self._col = torch.from_numpy(R.indices.astype("int64")).to(dev)
        self._deg = self._crow[1:] - self._crow[:-1]  # [U] training positives per user
        self._active = torch.nonzero(self._deg).squeeze(1)  # users with positives
        self._cache = torch.zeros(R.nnz, dtype=torch.long, device=dev)  # D negatives, CSR slots
        self._ptr = torch.zeros(U, dtype=torch.long, device=dev)  # next unused slot per user
        self._fresh = torch.zeros(U, dtype=torch.bool, device=dev)  # drawn for this epoch
        self._epoch: int | None = None  # the D epoch the cache was drawn for (None: none yet)
        self._next: int | None = None  # an announced epoch whose G phase + draw are pending
        self._cap = 0  # max_batches of the current epoch (0: full epochs)
        self._pretrained = False
        self.opt = torch.optim.Adam([self.user_g, self.item_g, self.bias_g], lr=self.gen_lr)

    def _require_setup(self) -> None:
        if self.user_g is None:
            raise RuntimeError(f"{type(self).__name__} needs setup(model, graph, ...) first")

    def pretrain(self, generator: torch.Generator | None = None, max_batches: int = 0) -> None:
        """DNS-BPR pre-training of G (once; a no-op after it ran or after `load_state_dict`):
        `pretrain_epochs` epochs over the training pairs, each capped at max_batches batches
        of `pretrain_batch` pairs when max_batches > 0 (the trainer passes train.max_batches)."""
        self._require_setup()
        if self._pretrained:
            return
        t = time.perf_counter()
        self._pretrain(self._graph, generator, max_batches)
        self._once["gen_pretrain_seconds"] = time.perf_counter() - t
        self._pretrained = True

    def _pretrain(self, graph: InteractionGraph, generator, max_batches: int = 0) -> None:
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
        starts = range(0, pu.numel(), bs)
        if max_batches:
            starts = starts[:max_batches]
        for _ in range(self.pretrain_epochs):
            perm = torch.randperm(pu.numel(), device=dev, generator=generator)
            for s in starts:
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
        logits = torch.addmm(self.bias_g, self.user_g[users], self.item_g.T)  # [c, I]
        return logits.masked_fill(self._train_mask(users), float("-inf"))

    def probabilities(self, users: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """softmax(g(u, ·) / T) over items (0 at training positives), [c, n_items], no grad."""
        with torch.no_grad():
            return torch.softmax(self.generator_logits(users) / temperature, -1)

    def _user_chunks(self, users: torch.Tensor, size: int | None = None):
        c = max(1, self._chunk // self.item_g.shape[0])
        return torch.split(users, c if size is None else max(1, min(size, c)))

    def reward(self, s_j: torch.Tensor, s_i: torch.Tensor) -> torch.Tensor:
        """r(u, i, j) from D's scores s_j = ŷ_uj of the drawn items and s_i = ŷ_ui of the
        positives they are paired with (same shape): IRGAN's 2(σ(ŷ_uj) − 0.5)."""
        return 2.0 * (torch.sigmoid(s_j) - 0.5)

    def train_generator(self, emb: Embeddings, generator: torch.Generator | None,
                        max_batches: int = 0) -> None:
        """One G epoch: every user with positives, in shuffled batches of gen_batch_users, one
        Adam step per batch (max_batches > 0: only the first max_batches batches).

        A batch is scored in blocks of users (bounded memory) whose gradients add up to the
        batch's gradient. As in IRGAN's per-user step (loss = −mean over the user's draws),
        each user's S·|P_u| draws are averaged, then the users of the batch."""
        d_user, d_item = emb.user.detach(), emb.item.detach()
        S = self.gen_samples
        order = self._active[torch.randperm(self._active.numel(), device=self._active.device,
                                            generator=generator)]
        batches = torch.split(order, self.gen_batch_users)
        if max_batches:
            batches = batches[:max_batches]
        for batch in batches:
            self.opt.zero_grad(set_to_none=True)
            for users in self._user_chunks(batch):
                deg = self._deg[users]  # [c]
                K = S * int(deg.max())
                logp_all = torch.log_softmax(self.generator_logits(users), -1)  # [c, I], grad
                with torch.no_grad():
                    js = draw(logp_all.detach().exp(), K, generator)  # [c, K] from p_θ
                    k = torch.arange(K, device=users.device)
                    valid = k.unsqueeze(0) < S * deg.unsqueeze(1)  # S·|P_u| draws per user
                    slot = self._crow[users].unsqueeze(1) + k.unsqueeze(0) % deg.unsqueeze(1)
                    pos = self._col[slot]  # [c, K]: the user's positives in turn
                    du = d_user[users.unsqueeze(1).expand(-1, K)[valid]]  # D: valid draws only
                    r = torch.zeros(js.shape, device=js.device)
                    r[valid] = self.reward((du * d_item[js[valid]]).sum(-1),
                                           (du * d_item[pos[valid]]).sum(-1))
                    w = valid.float() / (S * deg.unsqueeze(1)).float() / batch.numel()
                logp = logp_all.gather(1, js)  # [c, K]
                loss = -(logp * r * w).sum()
                if self.gen_reg:
                    loss = loss + self.gen_reg * (self.user_g[users].pow(2).sum() + self.item_g[
                        js[valid]].pow(2).sum()) / 2 / batch.numel()
                loss.backward()
                self.tally.add("gen_reward", r[valid])
                self.tally.add("gen_loss", -(logp.detach() * r)[valid])
            self.opt.step()

    def _draw(self, users: torch.Tensor, generator: torch.Generator | None) -> None:
        """D's negatives of `users` for this epoch: |P_u| draws from p_T(·|u) for each."""
        for chunk in self._user_chunks(users):
            deg = self._deg[chunk]
            K = int(deg.max())
            with torch.no_grad():
                p = self.probabilities(chunk, self.temperature)  # [c, I]
                js = draw(p, K, generator)  # [c, K]
                valid = torch.arange(K, device=chunk.device).unsqueeze(0) < deg.unsqueeze(1)
                slots = self._crow[chunk].unsqueeze(1) + torch.arange(K, device=chunk.device)
                self._cache[slots[valid]] = js[valid]
                self.tally.add("neg_prob", p.gather(1, js)[valid])
        self._fresh[users] = True

    def redraw(self, generator: torch.Generator | None) -> None:
        """D's negatives for a new epoch: |P_u| draws from p_T(·|u) for every user."""
        self._ptr.zero_()
        self._fresh.zero_()
        self._draw(self._active, generator)

    # -- epochs ---------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, max_batches: int = 0) -> None:
        """The trainer announces D epoch `epoch` (1-based) before its first batch, on every
        rank. The first call pre-trains G (unless resumed); each new epoch number makes the next
        `sample` run the G phase (from epoch 2 on) and draw the epoch's negatives, so G
        refreshes exactly once per epoch whatever the ranks, batch cap or resume point.
        max_batches > 0 (train.max_batches, smoke runs) caps the generator's epochs alike: each
        pre-training epoch and G epoch runs at most max_batches batches, and D's negatives are
        drawn only for the users the epoch serves, when first served."""
        self._require_setup()
        self._cap = max(0, int(max_batches))
        self.pretrain(self._gen, self._cap)
        if epoch != self._epoch:
            self._next = epoch

    def end_epoch(self) -> None:
        """End the discriminator epoch now: the next sample() runs the G phase and redraws (for
        callers that do not call on_epoch_start, e.g. a timing on a few batches)."""
        if self._epoch is not None:
            self._next = self._epoch + 1

    def _start_epoch(self, emb: Embeddings, generator) -> None:
        t = time.perf_counter()
        if self._epoch is not None:  # G phase against D as it ended the previous epoch
            for _ in range(self.gen_epochs):
                self.train_generator(emb, generator, self._cap)
        self._epoch, self._next = self._next, None
        self._ptr.zero_()
        self._fresh.zero_()
        if not self._cap:
            self._draw(self._active, generator)
        if self._active.is_cuda:
            torch.cuda.synchronize(self._active.device)
        self._phase_s += time.perf_counter() - t

    # -- sampler seam -----------------------------------------------------------------------
    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        self._require_setup()
        self.pretrain(generator, self._cap)  # no-op once done (callers without the epoch hook)
        if self._epoch is None and self._next is None:  # no hook: the first call opens epoch 1
            self._next = 1
        if self._next is not None:
            self._start_epoch(emb, generator)
        # take each row's user's next unused pre-drawn negative (wrapping if a user is revisited)
        order = torch.argsort(users, stable=True)
        su = users[order]
        uniq, counts = torch.unique_consecutive(su, return_counts=True)
        if self._cap:  # capped epoch: draw for the users served for the first time this epoch
            need = uniq[~self._fresh[uniq]]
            if need.numel():
                t = time.perf_counter()
                self._draw(need, generator)
                self._phase_s += time.perf_counter() - t
        rank = torch.arange(su.numel(), device=su.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        slot = self._crow[su] + (self._ptr[su] + rank) % self._deg[su]
        items = torch.empty_like(users)
        items[order] = self._cache[slot]
        self._ptr[uniq] += counts
        neg = emb.item[items]
        with torch.no_grad():
            self.tally.add("neg_score", (emb.user[users] * neg).sum(-1))
        return Negatives(items, neg)

    def state_dict(self) -> dict:
        """G's weights, its optimiser, the served-negative cache and the epoch it was drawn for,
        for `train --resume`."""
        return {"user_g": self.user_g.detach().cpu(), "item_g": self.item_g.detach().cpu(),
                "bias_g": self.bias_g.detach().cpu(), "opt": self.opt.state_dict(),
                "cache": self._cache.cpu(), "ptr": self._ptr.cpu(), "fresh": self._fresh.cpu(),
                "epoch": self._epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved, after `setup` built G on its device (G counts as
        pre-trained then)."""
        with torch.no_grad():
            for name in ("user_g", "item_g", "bias_g"):
                getattr(self, name).copy_(state[name])
        self.opt.load_state_dict(state["opt"])
        self._cache.copy_(state["cache"])
        self._ptr.copy_(state["ptr"])
        if "epoch" in state:
            self._epoch = state["epoch"]
            self._fresh.copy_(state["fresh"])
        else:  # a state.pt written before the epoch hook: it counted served pairs instead
            self._epoch = None if state.get("used") is None else -1
            self._fresh.fill_(True)
        self._next = None
        self._pretrained = True

    def stats(self) -> dict[str, float]:
        out = {**self.tally.read(), **self._once}
        if self._phase_s:
            out["gen_phase_seconds"] = self._phase_s  # G epochs + drawing D's negatives
        self._once, self._phase_s = {}, 0.0
        return out


class AdvIRSampler(IRGANSampler):
    """AdvIR's adversarial sampling (Park & Chang, WWW 2019): IRGAN's generator over unlabeled
    (non-train) items with the pair-wise reward r = ln σ(ŷ_uj − ŷ_ui) of IRGAN's pair-wise code
    (`reward = log(sigmoid(neg_score - pos_score))`), which AdvIR's pair-wise variant builds on.
    Combine with loss adv_bpr (preset advir) for AdvIR's adversarial training."""

    name = "advir"
    reward_kind = "pairwise"

    def reward(self, s_j: torch.Tensor, s_i: torch.Tensor) -> torch.Tensor:
        """ln σ(ŷ_uj − ŷ_ui) from D's scores of the drawn items and of their paired positives."""
        return F.logsigmoid(s_j - s_i)
