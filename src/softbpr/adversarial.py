"""GAN-based negative samplers: IRGAN and AdvIR's adversarial sampling (a generator picks j).

The recommender being trained (LightGCN, NGCF, MF) is the *discriminator* D: the trainer fits it
with the configured loss on (u, i, j), j drawn by the generator G. G is a separate MF with item
bias, g(u, j) = <p_u, q_j> + b_j, which this sampler owns and trains itself:

    D negative   j ~ softmax(g(u, ·) / temperature) over u's non-train items        [one per pair]
    G step       j_1..j_S ~ p_θ = softmax(g(u, ·)) over u's non-train items        [S per pair]
                 L_G = − mean_s log p_θ(j_s) · r(u, i, j_s)     (REINFORCE, no baseline; Adam)
                 irgan reward (IRGAN item-recommendation code): r = 2 (σ(ŷ_uj) − 0.5)
                 advir reward (IRGAN pairwise code, which AdvIR builds on): r = ln σ(ŷ_uj − ŷ_ui)
    ŷ = D's current scores (pooled dot products, no gradient to D).

Both rewards grow with D's score of j, so G learns to put its mass on the items D ranks high:
hard negatives. G takes one policy-gradient step per training batch, on that batch's pairs,
before D's step. `setup` first pre-trains G as IRGAN does (G starts from a DNS-trained MF).

Adaptations to the one-loop trainer, and where we depart from the references (on purpose):
- IRGAN's script alternates phases (15 rounds of 100 D-epochs, with D's negatives redrawn every
  5, then 50 G-epochs over all users); here G and D alternate per batch.
- IRGAN's D is point-wise (sigmoid cross-entropy on positives vs G samples); here D is the
  trainer's model with its pair-wise loss (BPR in presets irgan/advir), as MixGCF and SDNS use
  IRGAN as a sampler for LightGCN.
- IRGAN's G draws from all items and its G step mixes 20% of the user's positives into the
  proposal with importance weights p_θ/p_n; a negative sampler must not return positives, so
  both draws are restricted to non-train items and are on-policy (weights = 1).
- Optimiser: both IRGAN players use plain SGD (lr 0.001) over hundreds of passes; with one G step
  per D batch, G uses Adam (gen_lr, default 1e-3), like the trainer's D.
- Sizes: IRGAN's ML-100K G has dimension 5; default gen_dim is the paper's d = 64.
- Pre-training (IRGAN `cf_dns.py`): MF without bias, BPR with DNS over 5 uniform candidates,
  per-pair SGD (lr 0.05, λ 0.1) for 30 epochs; here `pretrain_epochs` (default 10) epochs of
  mini-batch Adam (lr 0.01, batch 2048, λ 1e-4), training pairs only (no test leakage, unlike
  IRGAN issue #34). The bias stays at its init 0 during pre-training, as the DNS model has none.
- AdvIR: its adversarial *sampling* is this IRGAN-style generator restricted to unlabeled
  (non-clicked) items, with the pair-wise reward; its adversarial *training* is the loss
  `adv_bpr` (losses.AdvBPR). AdvIR's exact item-recommendation hyper-parameters (ε,
  temperature, G size) could not be verified from the paper; ours are the documented defaults.

Hyper-parameters (constructor arguments; the first five are config fields of [sampler]):
    temperature=0.2      D negatives from softmax(g / T) (IRGAN code: 0.2)
    gen_dim=64           G embedding size
    gen_lr=1e-3          G Adam learning rate (policy gradient)
    gen_samples=2        S, G samples per pair per step (IRGAN: 2 per positive)
    pretrain_epochs=10   DNS-BPR pre-training epochs of G (0 = none)
    pretrain_lr=1e-2, pretrain_reg=1e-4, pretrain_batch=2048, pretrain_candidates=5
    gen_reg=0.0          L2 on G's rows in the G step (IRGAN: 0)
    init_delta=0.05      G init: uniform(±0.05) embeddings, zero bias (IRGAN's INIT_DELTA)
Per-epoch stats: neg_score (D's mean score of the drawn negatives), gen_reward, gen_loss (mean
of −log p_θ(j)·r), neg_prob (mean probability of the drawn negative under softmax(g/T): how
peaked the sampler is), and once gen_pretrain_seconds. All the generator's work (draws and its
step) counts in the trainer's sample_seconds.
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
                 gen_samples: int = 2, pretrain_epochs: int = 10, pretrain_lr: float = 1e-2,
                 pretrain_reg: float = 1e-4, pretrain_batch: int = 2048,
                 pretrain_candidates: int = 5, gen_reg: float = 0.0, init_delta: float = 0.05,
                 max_chunk_scores: int = 1 << 24):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if gen_dim < 1 or gen_samples < 1 or pretrain_epochs < 0:
            raise ValueError("gen_dim and gen_samples must be >= 1, pretrain_epochs >= 0")
        self.temperature, self.gen_dim, self.gen_lr = float(temperature), gen_dim, gen_lr
        self.gen_samples, self.pretrain_epochs = gen_samples, pretrain_epochs
        self.pretrain_lr, self.pretrain_reg = pretrain_lr, pretrain_reg
        self.pretrain_batch, self.pretrain_candidates = pretrain_batch, pretrain_candidates
        self.gen_reg, self.init_delta = gen_reg, init_delta
        self.max_chunk_scores = max_chunk_scores  # bounds the [rows, n_items] score block
        self.user_g = self.item_g = self.bias_g = None
        self.tally = Tally()
        self._once: dict[str, float] = {}

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
        opt = torch.optim.Adam([P, Q], lr=self.pretrain_lr)
        bs = self.pretrain_batch
        for _ in range(self.pretrain_epochs):
            perm = torch.randperm(pu.numel(), device=dev, generator=generator)
            for s in range(0, pu.numel(), bs):
                u, i = pu[perm[s:s + bs]], pi[perm[s:s + bs]]
                cand = uniform_candidates(graph, u, self.pretrain_candidates, generator)
                with torch.no_grad():  # DNS: the candidate the current MF scores highest
                    sc = (P[u].unsqueeze(1) * Q[cand]).sum(-1)  # [b, 5]
                    j = cand.gather(1, sc.argmax(1, keepdim=True)).squeeze(1)
                eu, ei, ej = P[u], Q[i], Q[j]
                loss = -F.logsigmoid((eu * (ei - ej)).sum(-1)).mean() + self.pretrain_reg * (
                    eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / 2 / u.numel()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        P.grad = Q.grad = None

    def _train_mask(self, users: torch.Tensor) -> torch.Tensor:
        """Bool [c, n_items]: True at each row user's training positives."""
        deg = self._crow[users + 1] - self._crow[users]  # [c]
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

    def reward(self, emb: Embeddings, users, pos, items) -> torch.Tensor:
        """r(u, i, j) for items [c, S] from D's current scores: 2(σ(ŷ_uj) − 0.5)."""
        s_neg = (emb.user[users].unsqueeze(1) * emb.item[items]).sum(-1)  # [c, S]
        return 2.0 * (torch.sigmoid(s_neg) - 0.5)

    # -- sampler seam -----------------------------------------------------------------------
    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        if self.user_g is None:
            raise RuntimeError(f"{type(self).__name__} needs setup(model, graph, ...) first")
        B, S = users.numel(), self.gen_samples
        items = torch.empty(B, dtype=torch.long, device=users.device)
        chunk = max(1, self.max_chunk_scores // graph.n_items)
        self.opt.zero_grad(set_to_none=True)
        for s in range(0, B, chunk):
            u, i = users[s:s + chunk], pos[s:s + chunk]
            logits = self.generator_logits(u)  # [c, I], grad to G
            with torch.no_grad():
                lt = logits.detach()
                p_d = torch.softmax(lt / self.temperature, -1)  # D's sampling distribution
                items[s:s + chunk] = draw(p_d, 1, generator).squeeze(1)
                p = torch.softmax(lt, -1)  # p_θ: G's policy
                js = draw(p, S, generator)  # [c, S]
                r = self.reward(emb, u, i, js).detach()  # [c, S]
                self.tally.add("neg_prob", p_d.gather(1, items[s:s + chunk, None]))
                self.tally.add("gen_reward", r)
            logp = torch.log_softmax(logits, -1).gather(1, js)  # [c, S]
            loss = -(logp * r).sum() / (B * S)
            if self.gen_reg:
                loss = loss + self.gen_reg * (self.user_g[u].pow(2).sum()
                                              + self.item_g[js].pow(2).sum()) / 2 / B
            loss.backward()
            self.tally.add("gen_loss", -(logp.detach() * r))
        self.opt.step()
        neg = emb.item[items]
        with torch.no_grad():
            self.tally.add("neg_score", (emb.user[users] * neg).sum(-1))
        return Negatives(items, neg)

    def stats(self) -> dict[str, float]:
        out = {**self.tally.read(), **self._once}
        self._once = {}
        return out

    def probabilities(self, users: torch.Tensor) -> torch.Tensor:
        """p_θ(j | u) over items (0 at training positives), [c, n_items], no gradient."""
        with torch.no_grad():
            return torch.softmax(self.generator_logits(users), -1)


class AdvIRSampler(IRGANSampler):
    """AdvIR's adversarial sampling (Park & Chang, WWW 2019): IRGAN's generator over unlabeled
    (non-train) items with the pair-wise reward r = ln σ(ŷ_uj − ŷ_ui) of IRGAN's pair-wise code
    (`reward = log(sigmoid(neg_score - pos_score))`), which AdvIR's pair-wise variant builds on.
    Combine with loss adv_bpr (preset advir) for AdvIR's adversarial training."""

    name = "advir"
    reward_kind = "pairwise"

    def reward(self, emb: Embeddings, users, pos, items) -> torch.Tensor:
        u = emb.user[users]  # [c, d']
        s_pos = (u * emb.item[pos]).sum(-1, keepdim=True)  # [c, 1]
        s_neg = (u.unsqueeze(1) * emb.item[items]).sum(-1)  # [c, S]
        return F.logsigmoid(s_neg - s_pos)
