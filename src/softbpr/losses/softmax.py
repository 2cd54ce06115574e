"""Softmax-family losses: sampled softmax (SL), BSL and PSL, with the paper's softening as an option.

Each pair (u, i) is scored against a *set* of negatives K(u, i): its M sampled negatives
(`neg` [B, M, d]), the other positives of the batch (in-batch negatives: `pos` of the other
rows), or both (loss.negatives = sampled | in_batch | both). With s = the score of the
similarity option (loss.similarity: cosine of the pooled vectors, as all three references
train, or the dot product) and d_j = s_uj − s_ui:

    SL   L = mean_pairs  log Σ_{j∈K} exp(d_j / τ)                       (sl)
    BSL  L = mean_pairs  τ₂ · log Σ_{j∈K} exp(d_j / τ) + (τ₂ − 1) s_ui / τ  (bsl)
    PSL  L = mean_pairs  log Σ_{j∈K} exp(σ(d_j / τ_s) / τ)               (psl)

The positive is *not* in the sum (BSL's and IR-Benchmark's code): SL = log Σ_j exp(d_j/τ) =
−s_ui/τ + log Σ_j exp(s_uj/τ). BSL's code computes −log(exp(s_ui/τ₁) / (Σ_j exp(s_uj/τ₁))^τ₂),
which is the form above (τ = τ₁); τ₂ = 1 is SL.

Softening (loss.soften = α, 0 = off): the SDNS paper's positive-dominated mixing carried over,
each negative replaced by α e_i + (1−α) e_j, i.e. (the scores being linear in the item vector;
for cosine, the *normalised* vectors are mixed) s_uj -> α s_ui + (1−α) s_uj and d_j -> (1−α) d_j:
- SL: exactly SL at temperature τ / (1−α). Softening adds nothing a temperature search does not
  cover ("the logits scaled by 1−α" is the same thing; tests/test_losses.py checks both).
- BSL: BSL at τ / (1−α) plus α(τ₂ − 1) s_ui / τ: a new loss unless τ₂ = 1 (tested).
- PSL: σ((1−α) d_j / τ_s) = σ(d_j / (τ_s/(1−α))): exactly PSL at score temperature
  τ_s/(1−α) (the scaling is of σ's argument; tested). Only BSL gets a new loss from softening.
"Logits scaled by 1−α" for BSL (all scores, positive included) is the temperature τ/(1−α):
no option needed.

In-batch negatives follow BSL's code (`Uniform_loss`): the B×B score matrix of the batch's users
and positives; row b's negatives are the other B−1 positives, not masked (a positive of the
same item, or another positive of the same user, counts as a negative). ml-100k's 1,682 items
put ~3.9 copies of a row's own item among its 2,047 in-batch negatives; each adds exp(0) to a
sum of ~2,047 terms and no gradient, so it matters little (measured: no difference, p ≥ 0.09,
docs/results/README.md). loss.in_batch_duplicates = drop leaves out the rows of the same item
(by pos_items, or identical pooled vectors without them; other positives of the same user
stay). A row without a negative left (a batch of one pair) contributes 0.

logQ correction (loss.correction = logq; Yi et al., "Sampling-Bias-Corrected Neural Modeling
for Large Corpus Item Recommendations", RecSys 2019): an in-batch slot holds item j with
probability q_j = n_j / N (its share of the N training pairs), so the batch over-represents
popular items as negatives and the model learns to push them down. Each in-batch negative's
logit gets − ln q_j added (after the loss's own transform: SL/BSL d_j/τ − ln q_j, PSL
σ(d_j/τ_s)/τ − ln q_j), i.e. the batch's sum Σ_j exp(d_j/τ)/q_j, an importance-weighted
estimate of the sum over the catalogue (up to a constant factor, which moves no gradient). The
positive's own correction is a constant and is left out. Only with negatives = in_batch:
mixing in sampled negatives (both) would need one proposal for both kinds of column (Mixed
Negative Sampling, Yang et al., WWW 2020), which we do not build; a shift of 0 on the sampled
columns would weigh them ~(B−1)·I/M times too light, so that combination is refused.
BSL's code has no such correction; the option is ours.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..models import sampled_scores
from .pairwise import Loss

if TYPE_CHECKING:
    from ..config import LossConfig


def off_diagonal(s: torch.Tensor) -> torch.Tensor:
    """[B, B] -> [B, B−1]: row b without its diagonal entry, the other columns in order."""
    B = s.shape[0]
    return s.flatten()[1:].view(B - 1, B + 1)[:, :-1].reshape(B, B - 1)


class SoftmaxFamily(Loss):
    """Shared scoring of the softmax losses: `score_diffs(u, pos, neg) -> (s_ui [B], d [B, K],
    keep, shift)` with the softening applied, d_j = (1−α)(s_uj − s_ui) for the K negatives of
    each pair (see `score_diffs`)."""

    def __init__(self, tau: float, similarity: str = "cosine", negatives: str = "sampled",
                 soften: float = 0.0, in_batch_duplicates: str = "keep",
                 correction: str = "none"):
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be cosine or dot, got {similarity!r}")
        if negatives not in ("sampled", "in_batch", "both"):
            raise ValueError(f"negatives must be sampled, in_batch or both, got {negatives!r}")
        if in_batch_duplicates not in ("keep", "drop"):
            raise ValueError(f"in_batch_duplicates must be keep or drop, got "
                             f"{in_batch_duplicates!r}")
        self.tau, self.similarity, self.negatives = float(tau), similarity, negatives
        self.uses_sampled = negatives != "in_batch"
        if correction not in ("none", "logq"):
            raise ValueError(f"correction must be none or logq, got {correction!r}")
        if correction == "logq" and negatives != "in_batch":
            raise ValueError("correction logq corrects in-batch negatives: negatives must be "
                             "in_batch")
        self.soften, self.in_batch_duplicates = float(soften), in_batch_duplicates
        self.correction = correction
        self.log_q: torch.Tensor | None = None  # [I] ln q_j, from setup()

    @classmethod
    def from_config(cls, cfg: LossConfig) -> SoftmaxFamily:
        return cls(cfg.tau, cfg.similarity, cfg.negatives, cfg.soften, cfg.in_batch_duplicates,
                   cfg.correction)

    def setup(self, item_counts: torch.Tensor) -> None:
        """Keeps ln q_j = ln(n_j / N) for the logQ correction (items without a training pair
        never appear in a batch; they get ln(1/N))."""
        if self.correction == "logq":
            n = item_counts.to(torch.float64)
            self.log_q = (n.clamp_min(1.0) / n.sum()).log().to(torch.float32)

    def _log_q_of(self, pos_items: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """ln q of the batch's positives [B], on `device` (the scores')."""
        if pos_items is None or self.log_q is None:
            raise ValueError("the logq correction needs setup(item_counts) and the batch's "
                             "positive item ids (pos_items)")
        if self.log_q.device != device:  # once: setup() may have had the counts elsewhere
            self.log_q = self.log_q.to(device)
        return self.log_q[pos_items.to(device)]

    def _in_batch_shift(self, pos_items: torch.Tensor | None,
                        device: torch.device) -> torch.Tensor | None:
        """[B, B−1]: − ln q of each in-batch negative (the other rows' items), or None."""
        if self.correction != "logq":
            return None
        lq = self._log_q_of(pos_items, device)  # [B]
        return off_diagonal(-lq.unsqueeze(0).expand(lq.shape[0], -1))

    def score_diffs(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None,
                    table: torch.Tensor | None = None, items: torch.Tensor | None = None,
                    pos_items: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                               torch.Tensor | None]:
        """(s_ui [B], d [B, K], keep [B, K] or None, shift [B, K] or None): keep marks the
        negatives that count (None: all); in-batch copies of the pair's own item are dropped
        with in_batch_duplicates=drop; shift is added to each negative's logit (the logQ
        correction, − ln q_j on the in-batch columns; None: no correction). The sampled
        negatives are the rows `neg` [B, M, d] (or [B, d]), or, given `table` and `items`
        [B, M], those rows of the table (scored by `sampled_scores`: same values); `pos_items`
        [B] are the positives' ids (the correction needs them)."""
        raw_pos = pos
        if neg is not None and neg.dim() == 2:
            neg = neg.unsqueeze(1)  # one negative per pair: [B, 1, d]
        cosine = self.similarity == "cosine"
        if cosine:  # the [B, d] rows are normalised; [B, M, d] is not copied (see below)
            u, pos = F.normalize(u, dim=-1), F.normalize(pos, dim=-1)
        s_pos = (u * pos).sum(-1)  # [B]
        parts = []
        if self.negatives in ("sampled", "both"):
            if table is not None:
                s = sampled_scores(u, table, items, cosine)
            else:
                s = torch.bmm(neg, u.unsqueeze(2)).squeeze(2)  # [B, M]
                if cosine:  # <û, e/|e|> = <û, e>/|e| as F.normalize (eps 1e-12): no copy
                    s = s / neg.norm(dim=-1).clamp_min(1e-12)
            parts.append(s)
        keep = shift = None
        if self.negatives in ("in_batch", "both"):
            parts.append(off_diagonal(u @ pos.T))  # [B, B−1]
            shift = self._in_batch_shift(pos_items, u.device)  # (None unless in_batch only)
            if self.in_batch_duplicates == "drop":
                # the positives' ids, or (called without them) rows of the same item are
                # bit-identical pooled vectors: an exact row unique
                item = pos_items.to(u.device) if pos_items is not None else torch.unique(
                    raw_pos.detach(), dim=0, return_inverse=True)[1]  # [B]
                other = off_diagonal(item.unsqueeze(1) != item.unsqueeze(0))  # [B, B−1]
                keep = other if len(parts) == 1 else torch.cat(
                    [torch.ones_like(parts[0], dtype=torch.bool), other], 1)
        s_neg = parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # [B, K]
        return s_pos, (1.0 - self.soften) * (s_neg - s_pos.unsqueeze(1)), keep, shift

    def batch_loss(self, u, pos, neg, table, pos_items=None):
        """As `__call__`, scoring M sampled negatives per pair from `table` (see Loss)."""
        if self.negatives == "in_batch":
            return self.loss_of(u, pos, None, pos_items=pos_items)
        if neg.items is None or neg.items.dim() != 2:
            return self(u, pos, neg.emb, pos_items)
        return self.loss_of(u, pos, None, table, neg.items, pos_items)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None,
                 pos_items: torch.Tensor | None = None) -> torch.Tensor:
        return self.loss_of(u, pos, neg, pos_items=pos_items)

    def loss_of(self, u, pos, neg, table=None, items=None, pos_items=None) -> torch.Tensor:
        """The loss of a batch (the arguments of `score_diffs`)."""
        return self.from_diffs(*self.score_diffs(u, pos, neg, table, items, pos_items))

    def scaled_log_sum_exp(self, u, pos, neg, table=None, items=None, pos_items=None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s_ui [B], log Σ_{kept j} exp(d_j/τ + shift_j) [B], valid [B]): the sum SL and BSL
        are made of (d_j with the softening applied). In-batch negatives take a shorter road
        with the same value: log Σ_j exp(c·s_uj + shift_j) − c·s_ui, c = (1−α)/τ, from one
        [B, B] product of (c·û) and the positives, its diagonal (with duplicates dropped: every
        entry of the row's own item, known from pos_items) set to −inf — no [B, B−1] copies of
        differences, scaled differences and their gradients (on one CPU thread and B = 2048
        about half the loss's time)."""
        B = u.shape[0]
        drop = self.in_batch_duplicates == "drop"
        if self.negatives == "in_batch" and B > 1 and (not drop or pos_items is not None):
            c = (1.0 - self.soften) / self.tau
            if self.similarity == "cosine":
                u, pos = F.normalize(u, dim=-1), F.normalize(pos, dim=-1)
            s_pos = (u * pos).sum(-1)  # [B]
            logits = (u * c) @ pos.T  # [B, B]; mm keeps its inputs, not its output: in place ok
            valid = torch.ones_like(s_pos, dtype=torch.bool)
            if drop:
                ids = pos_items.to(u.device)
                same = ids.unsqueeze(1) == ids.unsqueeze(0)  # [B, B], the diagonal included
                logits.masked_fill_(same, float("-inf"))
                valid = ~same.all(1)  # a row whose batch is all its own item has no negative
            else:
                logits.diagonal().fill_(float("-inf"))
            if self.correction == "logq":
                logits.sub_(self._log_q_of(pos_items, u.device).unsqueeze(0))
            lse = torch.logsumexp(logits, dim=1) - c * s_pos
            if drop:  # (an all −inf row: logsumexp −inf, its gradient finite and 0)
                lse = torch.where(valid, lse, 0.0)
            return s_pos, lse, valid
        s_pos, d, keep, shift = self.score_diffs(u, pos, neg, table, items, pos_items)
        lse, valid = self.log_sum_exp(d / self.tau, keep, shift)
        return s_pos, lse, valid

    def from_diffs(self, s_pos: torch.Tensor, d: torch.Tensor, keep: torch.Tensor | None,
                   shift: torch.Tensor | None = None) -> torch.Tensor:
        """The loss from `score_diffs`' output."""
        raise NotImplementedError

    @staticmethod
    def log_sum_exp(logits: torch.Tensor, keep: torch.Tensor | None,
                    shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(log Σ_{kept j} exp(logits_j + shift_j) [B], valid [B]): rows without a kept
        negative (a batch of one pair in-batch; every other row the same item) are not valid;
        their value is 0 and they pass no gradient (the caller zeroes their loss)."""
        if shift is not None:
            logits = logits + shift
        valid = (keep.any(1) if keep is not None
                 else torch.full(logits.shape[:1], logits.shape[1] > 0, device=logits.device))
        if keep is not None:  # (logsumexp of an all -inf row is -inf with a finite gradient)
            logits = logits.masked_fill(~keep, float("-inf"))
        return torch.where(valid, torch.logsumexp(logits, dim=1), 0.0), valid


class SampledSoftmax(SoftmaxFamily):
    """Sampled softmax loss SL: mean over pairs of log Σ_{j∈K} exp((s_uj − s_ui)/τ).

    References: Wu et al., "On the Effectiveness of Sampled Softmax Loss for Item
    Recommendation" (TOIS 2022); BSL's code (junkangwu/BSL, `Pos_DROLoss` with τ₂ = 1, the
    README's SL lines) and IR-Benchmark's `SoftmaxOptimizer` (Tiny-Snow/IR-Benchmark): both score
    with the cosine of the normalised vectors and leave the positive out of the sum.
    τ (loss.tau): BSL's LightGCN commands use 0.12-0.30 (ML-1M and Yelp2018 0.15), MF 0.08-0.17;
    IR-Benchmark searches {0.01, 0.05, 0.1, 0.2, 0.5}; ours defaults to 0.15. Negatives: BSL
    samples 800-1024 uniform negatives per pair or uses the batch (Yelp2018/Amazon/Gowalla
    LightGCN), IR-Benchmark 1000 uniform; our presets sl (256 uniform: CPU cost), sl-batch
    (in-batch) and sl-dns (the 64 highest-scored of 256: DNS(M, N) hard negatives).
    ∂L/∂s_uj = softmax_j(d/τ + shift)·(1−α)/τ / B, ∂L/∂s_ui = −(1−α)/τ / B (shift: the logQ
    correction's − ln q_j, 0 without it).
    """

    def from_diffs(self, s_pos, d, keep, shift=None):
        lse, _ = self.log_sum_exp(d / self.tau, keep, shift)
        return lse.mean() + 0.0 * s_pos.sum()  # (in the graph even without negatives)

    def loss_of(self, u, pos, neg, table=None, items=None, pos_items=None):
        s_pos, lse, _ = self.scaled_log_sum_exp(u, pos, neg, table, items, pos_items)
        return lse.mean() + 0.0 * s_pos.sum()


class BSL(SoftmaxFamily):
    """Bilateral softmax loss (Wu, Chen, Wu, Shi, Zhang & Wang, ICDE 2024; code junkangwu/BSL):
        L = mean over pairs of −s_ui/τ₁ + τ₂ · log Σ_{j∈K} exp(s_uj/τ₁)
          = τ₂ · SL + (τ₂ − 1) · s_ui/τ₁            (τ₁ = loss.tau, τ₂ = loss.bsl_tau2).

    This is the reference's `Pos_DROLoss` in `pos_mode = reweight`, the mode of all its LightGCN
    commands: `neg_logits.sum()` raised to τ₂ is the "one additional line" over SL. With one
    positive per pair the positive side's Log-Expectation-Exp is the positive's own term, and τ₂
    re-weights the negative side against it (∂L/∂s_ui = −1/τ₁ as SL; the negatives' gradients are
    τ₂ times SL's). Not reproduced: `pos_mode = multi` (its MF commands on Yelp2018, Gowalla and
    ML-1M), which averages exp(s_ui/τ₁) over the rows of the same user in the batch: our loss is
    not given user ids. Reference values: LightGCN Gowalla τ₁ 0.12, τ₂ 0.84 (logs/, in-batch),
    Yelp2018 0.15 / 1.12, Amazon 0.30 / 0.80, ML-1M 0.15 / 1.10; MF 0.08-0.17 / 1.06-1.32. Our
    defaults τ₁ 0.15, τ₂ 1.1. Use it with cosine scores (the reference's u_norm/i_norm): with dot
    products the (τ₂ − 1) s_ui term is unbounded.
    """

    def __init__(self, tau: float, tau2: float, similarity: str = "cosine",
                 negatives: str = "sampled", soften: float = 0.0,
                 in_batch_duplicates: str = "keep", correction: str = "none"):
        super().__init__(tau, similarity, negatives, soften, in_batch_duplicates, correction)
        self.tau2 = float(tau2)

    @classmethod
    def from_config(cls, cfg: LossConfig) -> BSL:
        return cls(cfg.tau, cfg.bsl_tau2, cfg.similarity, cfg.negatives, cfg.soften,
                   cfg.in_batch_duplicates, cfg.correction)

    def from_diffs(self, s_pos, d, keep, shift=None):
        lse, valid = self.log_sum_exp(d / self.tau, keep, shift)  # [B]
        return self._rows(s_pos, lse, valid)

    def loss_of(self, u, pos, neg, table=None, items=None, pos_items=None):
        return self._rows(*self.scaled_log_sum_exp(u, pos, neg, table, items, pos_items))

    def _rows(self, s_pos, lse, valid):
        row = self.tau2 * lse + (self.tau2 - 1.0) * s_pos / self.tau
        return torch.where(valid, row, 0.0 * row).mean()


def _log1p_tanh(x: torch.Tensor) -> torch.Tensor:
    """ln(tanh(x) + 1) = ln 2 + ln σ(2x): finite for every x (tanh(x) + 1 underflows)."""
    return math.log(2.0) + F.logsigmoid(2.0 * x)


ACTIVATIONS = {
    "tanh": _log1p_tanh,
    # ln(atan(x) + 1) and ln(ReLU(x + 1)) are -inf for x <= tan(-1) resp. x <= -1 (cosine
    # scores with τ_s = 2 keep x in [-1, 1]); clamped to a tiny positive argument there
    "atan": lambda x: torch.log((torch.atan(x) + 1.0).clamp_min(1e-30)),
    "relu": lambda x: torch.log((x + 1.0).clamp_min(1e-30)),
}


class PSL(SoftmaxFamily):
    """Pairwise softmax loss (Yang, Chen, Xin, Zhou, Hu, Feng, Chen & Wang, "PSL: Rethinking and
    Improving Softmax Loss from Pairwise Perspective for Recommendation", NeurIPS 2024; code
    Tiny-Snow/IR-Benchmark `PSLOptimizer`, method 1):
        L = mean over pairs of log Σ_{j∈K} exp(σ(d_j / τ_s) / τ),   d_j = s_uj − s_ui (cosine),
    SL with exp(d) replaced by exp(σ(d)) for an activation σ that bounds the NDCG surrogate more
    tightly: tanh -> ln(tanh + 1) (default), atan -> ln(atan + 1), relu -> ln(ReLU(· + 1))
    (loss.psl_activation). τ_s (loss.psl_tau_score, reference `tau`, default 2) scales the cosine
    scores into d/τ_s ∈ [−1, 1]; τ (loss.tau, reference `tau_star`, default 1, searched in
    {0.005, 0.025, 0.05, 0.1, 0.25}) is the DRO temperature. Our preset psl sets τ = 0.05 (for
    small d, ln(tanh(x) + 1) ≈ x, so PSL ≈ SL at temperature τ·τ_s = 0.1). Not reproduced:
    method 2 (the BPR-like form) and the adaptive τ*. ln(tanh(x) + 1) is computed as
    ln 2 + ln σ(2x) (exact, finite for dot-product scores too).
    """

    def __init__(self, tau: float, tau_score: float, activation: str = "tanh",
                 similarity: str = "cosine", negatives: str = "sampled", soften: float = 0.0,
                 in_batch_duplicates: str = "keep", correction: str = "none"):
        super().__init__(tau, similarity, negatives, soften, in_batch_duplicates, correction)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.tau_score, self.activation = float(tau_score), activation

    @classmethod
    def from_config(cls, cfg: LossConfig) -> PSL:
        return cls(cfg.tau, cfg.psl_tau_score, cfg.psl_activation, cfg.similarity,
                   cfg.negatives, cfg.soften, cfg.in_batch_duplicates, cfg.correction)

    def from_diffs(self, s_pos, d, keep, shift=None):
        act = ACTIVATIONS[self.activation](d / self.tau_score)
        lse, _ = self.log_sum_exp(act / self.tau, keep, shift)
        return lse.mean() + 0.0 * s_pos.sum()
