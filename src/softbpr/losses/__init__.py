"""Losses on (user, positive, negative) embeddings, chosen by name from `LOSSES`.

A loss is called as `loss(u [B, d], pos [B, d], neg [B, d] or [B, M, d]) -> scalar` and has
`.alpha` (the soft-BPR α; 0 when it has none), which the trainer uses to log the gradient
weight Δ (`gradient_weight`). `build_loss(cfg)` = `LOSSES[cfg.name].from_config(cfg)`; every
default lives in `config.LossConfig`, which validates it (the constructors take values as given).

    bpr          BPR (Rendle et al. 2009)                                    pairwise.py
    soft_bpr     soft BPR, the SDNS paper's loss (eq. 10)                    pairwise.py
    mixed_bpr    BPR on the positive-dominated mixed negative (eq. 5)        pairwise.py
    adv_bpr      AdvIR's adversarial training, pairwise form                 pairwise.py
    hard_bpr     Hard-BPR (Shi et al. 2024)                                  pairwise.py
    softmax_bpr  Softmax(ρ, N): BPR weighted by a softmax over N negatives   pairwise.py
                 (Shi et al., WWW 2023)
    sl           sampled softmax (SSM/SL; Wu et al. TOIS 2022, BSL's code)   softmax.py
    bsl          Bilateral softmax loss (Wu et al., ICDE 2024)               softmax.py
    psl          Pairwise softmax loss (Yang et al., NeurIPS 2024)           softmax.py

The BPR family averages M negatives (the mean of M one-negative losses); the softmax family
(sl, bsl, psl, softmax_bpr) treats the M negatives of a pair as one set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pairwise import (
    BPR,
    AdvBPR,
    HardBPR,
    Loss,
    MixedBPR,
    SoftBPR,
    SoftmaxBPR,
    adversarial_perturbation,
    gradient_weight,
    l2_penalty,
    score_gap,
)
from .softmax import BSL, PSL, SampledSoftmax

if TYPE_CHECKING:  # config imports the registry's names: no import at run time
    from ..config import LossConfig

LOSSES: dict[str, type[Loss]] = {"bpr": BPR, "soft_bpr": SoftBPR, "mixed_bpr": MixedBPR,
                                 "adv_bpr": AdvBPR, "hard_bpr": HardBPR,
                                 "softmax_bpr": SoftmaxBPR, "sl": SampledSoftmax, "bsl": BSL,
                                 "psl": PSL}


def build_loss(cfg: LossConfig) -> Loss:
    """The loss of config section `cfg` (a `config.LossConfig`)."""
    if cfg.name not in LOSSES:
        raise ValueError(f"unknown loss {cfg.name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[cfg.name].from_config(cfg)


__all__ = ["BPR", "BSL", "LOSSES", "PSL", "AdvBPR", "HardBPR", "Loss", "MixedBPR",
           "SampledSoftmax", "SoftBPR", "SoftmaxBPR", "adversarial_perturbation", "build_loss",
           "gradient_weight", "l2_penalty", "score_gap"]
