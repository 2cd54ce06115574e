"""Pairwise losses on (user, positive, negative) embeddings, and the L2 penalty.

A loss is called as `loss(u [B, d], pos [B, d], neg [B, d] or [B, M, d]) -> scalar` and has
`.alpha` (0 when it has none). With M negatives per pair the BPR-family losses below average
over the B·M (pair, negative) terms, i.e. each is the mean of M one-negative losses. All use
`logsigmoid` (stable for any score gap); ŷ_ui = <u, pos>, ŷ_uj = <u, neg>.
- BPR (Rendle et al. 2009):     L = -mean ln σ(ŷ_ui − ŷ_uj)
- soft BPR (SDNS paper, eq. 10): L = -mean ln σ((1−α)(ŷ_ui − ŷ_uj)),  0 <= α < 1
- mixed BPR (eq. 5 + eq. 1):    e_j' = α e_i + (1−α) e_j,  L = -mean ln σ(ŷ_ui − <e_u, e_j'>)
Since <e_u, e_j'> = α ŷ_ui + (1−α) ŷ_uj, mixed BPR equals soft BPR exactly, in value and in
gradient w.r.t. every embedding (eq. 7); `tests/test_losses.py` checks it numerically.
The gradient weight of a triplet is Δ = 1 − σ((1−α)(ŷ_ui − ŷ_uj)) (eq. 8–9), see `gradient_weight`
(the trainer logs it per epoch with the loss's own α).
- adversarial BPR (AdvIR's adversarial training, pairwise form; APR's objective):
      L = BPR(u, i, j) + w · BPR(u + δ_u, i + δ_i, j + δ_j),   δ_x = ε g_x / ||g_x||₂ per row,
  g_x = ∂BPR/∂x at the clean embeddings (the fast-gradient, worst-case direction), see `AdvBPR`.
- Hard-BPR (Shi et al. 2024):    L = -mean ln [(σ(c·(ŷ_ui − ŷ_uj) + b) + a) / (1 + a)], see `HardBPR`
- Softmax(ρ, N) (Shi et al., WWW 2023): BPR terms of the N negatives of a pair weighted by a
  softmax over their own losses with a variance-adapted temperature, see `SoftmaxBPR` (the one
  loss here that does not average its M = N negatives).

Losses are built from the [loss] config section (see `softbpr.losses`); every default lives in
`config.LossConfig` only, and it validates them (the constructors take them as given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import models

if TYPE_CHECKING:  # config imports the registry: no import at run time
    from ..config import LossConfig
    from ..samplers.base import Negatives


def score_gap(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """ŷ_ui − ŷ_uj: u, pos [B, d], neg [B, d] -> [B]; neg [B, M, d] -> [B, M]."""
    s_pos = (u * pos).sum(-1)  # [B]
    if neg.dim() == 3:
        return s_pos.unsqueeze(1) - (u.unsqueeze(1) * neg).sum(-1)  # [B, M]
    return s_pos - (u * neg).sum(-1)


def gradient_weight(diff: torch.Tensor, alpha: float) -> torch.Tensor:
    """Δ = 1 − σ((1−α)·diff) for score gaps diff = ŷ_ui − ŷ_uj (the weight in eq. 8/9):
    ∂ soft BPR / ∂ diff = −(1−α) Δ / (number of terms averaged)."""
    return 1.0 - torch.sigmoid((1.0 - alpha) * diff)


class Loss:
    """Base class: `__call__(u, pos, neg) -> scalar`, `.alpha`, `from_config(cfg)`."""

    alpha: float = 0.0
    # Does the loss read the sampler's negatives? False (the softmax losses with in-batch
    # negatives only): the trainer leaves them out of the L2 penalty, which then covers the
    # batch's users and positives, as in BSL's in-batch mode.
    uses_sampled: bool = True

    @classmethod
    def from_config(cls, cfg: LossConfig) -> Loss:
        return cls()

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def setup(self, item_counts: torch.Tensor) -> None:
        """Once before training: `item_counts` int64 [I], each item's training pairs. Default:
        nothing (a loss that needs the item distribution, e.g. SL's logQ correction, keeps it)."""

    def batch_loss(self, u: torch.Tensor, pos: torch.Tensor, neg: Negatives,
                   table: torch.Tensor, pos_items: torch.Tensor | None = None) -> torch.Tensor:
        """The training loop's call: the loss of a batch from its `Negatives`, the pooled
        item table [I, d'] their rows come from and the positives' ids `pos_items` [B].
        Default `self(u, pos, neg.emb)`; a loss over many negatives per pair may score them from
        `table` and `neg.items` instead (the softmax losses: no [B, M, d'] passes). Same value
        and gradient, float rounding aside."""
        return self(u, pos, neg.emb)


class SoftBPR(Loss):
    """-mean ln σ((1−α)(ŷ_ui − ŷ_uj)); α = 0 is plain BPR."""

    def __init__(self, alpha: float):
        self.alpha = float(alpha)

    @classmethod
    def from_config(cls, cfg: LossConfig) -> SoftBPR:
        return cls(cfg.alpha)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return -F.logsigmoid((1.0 - self.alpha) * score_gap(u, pos, neg)).mean()


class BPR(SoftBPR):
    """-mean ln σ(ŷ_ui − ŷ_uj) (α = 0)."""

    def __init__(self):
        super().__init__(0.0)

    @classmethod
    def from_config(cls, cfg: LossConfig) -> BPR:
        return cls()


class MixedBPR(Loss):
    """BPR on the positive-dominated synthetic negative e_j' = α e_i + (1−α) e_j (eq. 5)."""

    def __init__(self, alpha: float):
        self.alpha = float(alpha)

    @classmethod
    def from_config(cls, cfg: LossConfig) -> MixedBPR:
        return cls(cfg.alpha)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        p = pos.unsqueeze(1) if neg.dim() == 3 else pos  # [B, 1, d] against [B, M, d]
        mixed = self.alpha * p + (1.0 - self.alpha) * neg  # like neg
        return -F.logsigmoid(score_gap(u, pos, mixed)).mean()


def adversarial_perturbation(grads: tuple[torch.Tensor, ...], eps: float
                             ) -> tuple[torch.Tensor, ...]:
    """δ = ε g / ||g||₂ for each row of each gradient (rows with g = 0 get δ = 0): ||δ|| <= ε."""
    return tuple(eps * g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12) for g in grads)


class AdvBPR(Loss):
    """AdvIR's adversarial training (Park & Chang, WWW 2019), pairwise form, as a loss wrapper.

    L = BPR(u, i, j) + weight · BPR(u + δ_u, i + δ_i, j + δ_j), with δ_x = ε g_x / ||g_x||₂ row by
    row and g_x = ∂BPR/∂x at the clean (u, i, j) [B, d'] rows: a first-order worst-case
    perturbation of L2 norm ε, in the direction that increases the loss (FGSM with L2 norm, as
    AdvIR and APR). δ is a constant (the gradient is taken with create_graph=False and
    detached), so the second term trains the model to rank correctly *around* its embeddings.
    With M negatives per pair each negative row [B, M, d'] gets its own δ.

    What is perturbed: the pooled representations the trainer scores (user, positive and the
    sampled negative — AdvIR perturbs both clicked and sampled examples). APR/AdvIR perturb the
    embeddings of an MF-style model directly; for a GNN the pooled vector is the embedding that
    is scored, and perturbing it needs no second propagation.
    Config defaults (loss.adv_weight, loss.eps): weight = 1 (APR's λ, He et al., SIGIR 2018) and
    ε = 0.01. AdvIR's item-recommendation values could not be verified. APR uses ε = 0.5, but
    on MF embeddings pre-trained with BPR; ε is absolute, and the pooled vectors trained here
    from scratch have norms of about 0.03-0.5 (synthetic-small after 20 epochs: 0.17). There
    ε >= 0.05 held training back (20 epochs of preset advir on synthetic-small, test recall@50:
    ε 0.5 -> 0.14, 0.1 -> 0.13, 0.05 -> 0.36, 0.03 -> 0.40, 0.01 -> 0.40; plain BPR with the same
    sampler 0.40). Scale ε with the model's embedding norms.
    `last_delta` keeps the latest (δ_u, δ_i, δ_j) for inspection.
    """

    def __init__(self, eps: float, weight: float):
        self.eps, self.weight = float(eps), float(weight)
        self.base = BPR()
        self.last_delta: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def from_config(cls, cfg: LossConfig) -> AdvBPR:
        return cls(cfg.eps, cfg.adv_weight)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        loss = self.base(u, pos, neg)  # [] clean BPR
        if self.weight == 0.0 or self.eps == 0.0:
            return loss * (1.0 + self.weight)  # δ = 0: the perturbed loss is the clean one
        need = [x for x in (u, pos, neg) if x.requires_grad]
        if loss.requires_grad and need:
            gs = iter(torch.autograd.grad(loss, need, retain_graph=True))
            grads = tuple(next(gs) if x.requires_grad else torch.zeros_like(x)
                          for x in (u, pos, neg))
        else:  # no graph (e.g. a check under no_grad): perturb along the analytic gradient
            with torch.enable_grad():
                xs = [x.detach().requires_grad_(True) for x in (u, pos, neg)]
                grads = torch.autograd.grad(self.base(*xs), xs)
        du, dp, dn = adversarial_perturbation(tuple(g.detach() for g in grads), self.eps)
        self.last_delta = (du, dp, dn)
        return loss + self.weight * self.base(u + du, pos + dp, neg + dn)


class HardBPR(Loss):
    """Hard-BPR (Shi, Zhang, Fang, Wang & Jing, arXiv 2403.19276, 2024): BPR whose preference
    probability saturates for overly hard negatives, so that they (likely false negatives under
    DNS) stop dominating the gradient:

        P(i >_u j) = (σ(c·x + b) + a) / (1 + a),   x = ŷ_ui − ŷ_uj,   L = −mean ln P.

    Per term ∂L/∂x = −c σ(z)(1 − σ(z)) / (σ(z) + a) with z = c·x + b: for a > 0 it vanishes as
    x → −∞ (a negative scored far above the positive), where BPR's weight tends to its maximum;
    a = b = 0, c = 1 is BPR. ln(σ(z) + a) is computed as logaddexp(ln σ(z), ln a): stable for
    any z, and exact for a = 0. Paired with DNS in preset hard-bpr (the paper trains Hard-BPR on
    DNS negatives). Defaults a = 1, b = −1, c = 0.8 (config loss.hard_a/b/c): the values of a
    public re-implementation that cites the paper; the paper's own table of a, b, c could not
    be read from the stored copies (its parameter study reports that only two of the three need
    tuning) — check them against the paper before a tuned study. M negatives: the mean.
    """

    def __init__(self, a: float, b: float, c: float):
        self.a, self.b, self.c = float(a), float(b), float(c)

    @classmethod
    def from_config(cls, cfg: LossConfig) -> HardBPR:
        return cls(cfg.hard_a, cfg.hard_b, cfg.hard_c)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        z = self.c * score_gap(u, pos, neg) + self.b  # [B] or [B, M]
        log_a = torch.tensor(self.a, dtype=z.dtype, device=z.device).log()  # -inf for a = 0
        log_p = torch.logaddexp(F.logsigmoid(z), log_a) - torch.log1p(log_a.exp())
        return -log_p.mean()


class SoftmaxBPR(Loss):
    """Softmax(ρ, N) (Shi et al., "On the Theories Behind Hard Negative Sampling for
    Recommendation", WWW 2023; code swt-user/WWW_2023_code `loss_type=2`, `--weighted`): the
    softmax-based hard sampling as a weighting of the N negatives of each pair.

    With Z_j = −ln σ(ŷ_ui − ŷ_uj) the BPR loss of negative j of a pair ([B, N]),
        τ = sqrt(Var_j(Z) / (2ρ))  (per pair, unbiased variance),  w = softmax_j(Z / τ),
        L = mean over pairs of Σ_j w_j Z_j,   w and τ detached (no gradient through them).
    This is the closed form of the KL-constrained worst case over the N negatives (radius ρ):
    small ρ -> uniform weights (BPR), large ρ -> the hardest negative (DNS). The paper proves
    Softmax(ρ, N) a soft estimator of one-way partial AUC, DNS(M, N) an exact one. Reference
    defaults: N = 200 uniform negatives (`--sample_num 200`), ρ = 1 (`--lambda_w 1`); preset
    softmax-rho = sampler uniform with M = N negatives + this loss. Differences: the reference
    sums over the batch (we average, like every loss here: only the scale relative to the L2
    term changes, and ours divides that by the batch too), subtracts the proposal's
    log-probability (a constant for uniform draws: no effect on the softmax) and draws from all
    items (ours: from the user's non-train items). With one negative, w = 1 (BPR).
    """

    def __init__(self, rho: float):
        self.rho = float(rho)

    @classmethod
    def from_config(cls, cfg: LossConfig) -> SoftmaxBPR:
        return cls(cfg.rho)

    def weights(self, z: torch.Tensor) -> torch.Tensor:
        """w [B, N] from the per-negative losses z [B, N] (no gradient)."""
        z = z.detach()
        if z.shape[1] == 1:
            return torch.ones_like(z)
        tau = (z.var(dim=1, keepdim=True) / (2.0 * self.rho)).sqrt().clamp_min(1e-12)
        return torch.softmax(z / tau, dim=1)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return self._from_gap(score_gap(u, pos, neg))

    def batch_loss(self, u, pos, neg, table, pos_items=None):
        if neg.items is None or neg.items.dim() != 2:
            return self(u, pos, neg.emb)
        s_neg = models.sampled_scores(u, table, neg.items)  # [B, M]
        return self._from_gap((u * pos).sum(-1, keepdim=True) - s_neg)

    def _from_gap(self, gap: torch.Tensor) -> torch.Tensor:
        z = -F.logsigmoid(gap if gap.dim() == 2 else gap.unsqueeze(1))  # [B, N]
        return (self.weights(z) * z).sum(1).mean()


def l2_penalty(*rows: torch.Tensor) -> torch.Tensor:
    """sum over the given layer-0 rows of ||e||² / 2, divided by the batch size (rows[0] count).

    This is LightGCN's regulariser: only the ego embeddings used in the batch are penalised.
    """
    batch = rows[0].shape[0]
    return sum(r.pow(2).sum() for r in rows) / 2.0 / batch
