"""Negative samplers: given a batch of (user, positive) pairs, return negatives (`Negatives`).

Every sampler subclasses `Sampler` (base.py: the lifecycle hooks and their order) and is chosen
by name from `SAMPLERS` at the config edge: `build_sampler(cfg)` = `SAMPLERS[cfg.name]
.from_config(cfg)`. Adding one is a file here plus one line in `SAMPLERS` (docs/extending.md).

    uniform  RNS: one uniform non-train item                                    uniform.py
    dns      DNS(H): the highest-scored of H uniform candidates                 dns.py
    mixgcf   MixGCF (Huang et al., KDD 2021): positive + hop mixing of H        mixgcf.py
             candidates, a synthetic negative embedding (no item id)
    irgan    IRGAN (Wang et al., SIGIR 2017): an MF generator samples the       gan.py,
             negative, trained by policy gradient on the recommender's          generator.py
             (discriminator's) reward
    advir    AdvIR (Park & Chang, WWW 2019): the same adversarial sampling with IRGAN's pairwise
             reward; pair it with loss adv_bpr (preset advir) for its adversarial training
    dns_mn   DNS(M, N) (Shi et al., WWW 2023): the M highest-scored of N uniform    dnsmn.py
             candidates, items [B, M]
    ahns     AHNS (Lai et al., AAAI 2024): the candidate scored closest to         ahns.py
             β(ŷ_ui + α)^(p+1), a target that follows the positive's score

`uniform` returns M = sampler.n_negatives draws per pair ([B, M]) when M > 1; `dns_mn` and
`ahns` too (see config.MULTI_NEGATIVE_SAMPLERS).

Hardness figures in `stats()` (per epoch): `neg_score` = mean score ŷ_uj of the chosen negative
(for mixgcf: of the synthetic one) and, for samplers with a candidate pool, `cand_score` = mean
score of all candidates (the uniform baseline it is chosen from). The trainer adds
`score_gap` (mean ŷ_ui − ŷ_uj) and `sample_seconds` (the sampler's cost).
"""

from __future__ import annotations

from .ahns import AHNSSampler
from .base import Negatives, Sampler, Tally, nth_free_item, scores, uniform_candidates
from .dns import DynamicHardSampler
from .dnsmn import DNSMNSampler
from .gan import AdvIRSampler, IRGANSampler
from .generator import Generator
from .mixgcf import MixGCFSampler
from .uniform import UniformSampler

SAMPLERS: dict[str, type[Sampler]] = {
    "uniform": UniformSampler,
    "dns": DynamicHardSampler,
    "mixgcf": MixGCFSampler,
    "irgan": IRGANSampler,
    "advir": AdvIRSampler,
    "dns_mn": DNSMNSampler,
    "ahns": AHNSSampler,
}


def build_sampler(cfg, **kwargs) -> Sampler:
    """The sampler of config section `cfg` (a `config.SamplerConfig`); `kwargs` go to the
    sampler's constructor (arguments the config does not carry: tests, benchmarks)."""
    if cfg.name not in SAMPLERS:
        raise ValueError(f"unknown sampler {cfg.name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[cfg.name].from_config(cfg, **kwargs)


__all__ = ["SAMPLERS", "AHNSSampler", "AdvIRSampler", "DNSMNSampler", "DynamicHardSampler",
           "Generator", "IRGANSampler", "MixGCFSampler", "Negatives", "Sampler", "Tally", "UniformSampler", "build_sampler",
           "nth_free_item", "scores", "uniform_candidates"]
