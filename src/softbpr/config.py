"""Typed, frozen experiment configuration: every parameter is written once, here.

An `Experiment` has six sections (data, model, sampler, loss, train, eval). Each parameter is
one dataclass field whose `param(...)` metadata carries its one-line help, bounds, choices and
display label; the docstring under it is the long help. Everything else is derived from the
fields: validation (`__post_init__`), the flat names (`FLAT`) that TOML files, sweeps and the
CLI use, the `softbpr train` flags and their `--help` defaults (cli/train.py), and `label()`.

A TOML file may set the sections as tables (``[train] lr = 1e-3``), by flat name
(``lr = 1e-3``, ``pool_size = 32``), or pick a `preset` (a sampler + loss pair). Precedence,
lowest first: defaults < preset < explicit keys; CLI flags are applied after the file in the same
way. Unknown keys raise `ConfigError` naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A bad configuration key or value; the message names it."""


def param(default, help: str, *, choices: tuple[str, ...] | None = None, ge=None, gt=None,
          le=None, lt=None, label: str | None = None, default_text: str | None = None):
    """A config field: its default, one line of help, and what `__post_init__` checks.

    ge/gt/le/lt: inclusive/exclusive bounds; choices: the allowed strings; label: a short name
    for tables and figures (see `label`); default_text: how --help shows a default that depends
    on other fields (the field's default is then None)."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "label": label, "default_text": default_text}
    return field(default=default, metadata={k: v for k, v in meta.items() if v is not None})


# The names of the registered components. They are kept here (not imported) so that config
# needs neither torch nor the component modules; tests/test_contracts.py checks that they equal
# the keys of models.MODELS, samplers.SAMPLERS and losses.LOSSES.
MODEL_NAMES = ("lightgcn", "ngcf", "mf")
SAMPLER_NAMES = ("uniform", "dns", "mixgcf", "irgan", "advir", "dns_mn", "ahns")
LOSS_NAMES = ("bpr", "soft_bpr", "mixed_bpr", "adv_bpr", "hard_bpr", "softmax_bpr", "sl", "bsl",
              "psl")
NO_ALPHA_LOSSES = ("bpr", "adv_bpr", "hard_bpr", "softmax_bpr", "sl", "bsl", "psl")
MULTI_NEGATIVE_SAMPLERS = ("uniform", "dns_mn", "ahns")
"""The samplers that return sampler.n_negatives = M negatives per pair (the others return one)."""
DEFAULT_ALPHA = 0.9
"""α of soft_bpr / mixed_bpr when none is given (τ = 1-α = 0.1); bpr and adv_bpr have α = 0."""


class _Section:
    """Shared validation of the config sections, driven by each field's `param` metadata."""

    SECTION: ClassVar[str]

    def __post_init__(self):
        hints = _hints(type(self))
        for f in fields(self):
            value = _coerce(self.SECTION, f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
            _check(self.SECTION, f, value)
        self._cross_check()

    def _cross_check(self) -> None:
        """Checks that involve several fields (the per-field ones come from the metadata)."""


@dataclass(frozen=True)
class DataConfig(_Section):
    """Data: which interactions, and how they are split."""

    SECTION: ClassVar[str] = "data"
    data: str = param("synthetic", "built-in dataset (synthetic, synthetic-small) or a path")
    """Built-in dataset name (`synthetic`, `synthetic-small`) or a path (file or folder)."""
    format: str = param("auto", "file format",
                        choices=("auto", "lightgcn", "csv", "recbole", "parquet"))
    """auto | lightgcn (folder with train.txt/test.txt[/valid.txt], or a *train* file) | csv (one
    delimited file: comma, TAB, '::', ';' or spaces) | recbole (.inter) | parquet."""
    split: str = param("auto", "auto = given for LightGCN folders, temporal when timestamps "
                       "exist, else random", choices=("auto", "given", "temporal", "random"))
    """auto | given | temporal | random. auto: given for LightGCN folders, temporal when the
    data has timestamps (the paper's protocol), else random."""
    columns: str | None = param(None, "column names of a delimited file, e.g. "
                                "user,item,rating,timestamp", default_text="the header, or "
                                "user,item[,timestamp] by position")
    """Column names of a delimited file in order (user, item, timestamp; others are ignored,
    e.g. ``user,item,rating,timestamp`` for MovieLens u.data). Without it: the header's names,
    or user,item[,timestamp] by position in a 2- or 3-column file; a header that names other
    columns than this is an error."""
    kcore: int = param(0, "k-core filter on users and items; 0/1 = off", ge=0)
    """Drop users and items with fewer than k interactions, repeatedly (0/1 = off)."""
    valid_ratio: float = param(0.1, "per-user validation share", ge=0.0, lt=1.0)
    """Per-user share of interactions held out for validation (temporal/random splits, and of
    train items when a given split has no valid file)."""
    test_ratio: float = param(0.1, "per-user test share", ge=0.0, lt=1.0)
    """Per-user share held out for test (temporal/random splits)."""
    seed: int = param(2024, "seed of the synthetic data and random splits", ge=0, lt=2**63)
    """Seed of the data: synthetic generation and random splits (kept apart from the training
    seed so that runs over several training seeds share one dataset)."""

    def _cross_check(self):
        if self.valid_ratio + self.test_ratio >= 1.0:
            raise ConfigError(f"data.valid_ratio + data.test_ratio must be < 1, got "
                              f"{self.valid_ratio} + {self.test_ratio}; nothing would be left "
                              "for training")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """Model: the recommender and its size."""

    SECTION: ClassVar[str] = "model"
    name: str = param("lightgcn", "the recommender", choices=MODEL_NAMES)
    """lightgcn | ngcf | mf."""
    dim: int = param(64, "embedding size", ge=1, label="d")
    """Embedding size d (NGCF's pooled vectors are d * (layers + 1) wide)."""
    layers: int = param(3, "LightGCN / NGCF propagation layers", ge=0, label="L")
    """Propagation layers L of LightGCN / NGCF (ignored by mf)."""
    init: str = param("xavier", "embedding initialisation", choices=("xavier", "normal"))
    """xavier (uniform, as MixGCF's code) | normal (N(0, 0.1^2), as LightGCN-PyTorch)."""
    mess_dropout: float = param(0.0, "ngcf: message dropout rate; NGCF's code uses 0.1",
                                ge=0.0, lt=1.0)
    """NGCF message dropout on each layer's output, training only (0 = off, as MixGCF's README
    runs; the NGCF code uses 0.1)."""
    node_dropout: float = param(0.0, "ngcf: node (adjacency entry) dropout rate", ge=0.0, lt=1.0)
    """NGCF node dropout: share of propagation-matrix entries dropped per training pass (0 = off
    as in both reference READMEs; 0.1 when enabled there)."""
    ngcf_variant: str = param("original", "ngcf: the authors' code (original) or MixGCF's port",
                              choices=("original", "mixgcf"))
    """original (the NGCF authors' code: D^-1 (A+I), one LeakyReLU per branch) | mixgcf
    (MixGCF's port: LightGCN's D^-1/2 A D^-1/2, one LeakyReLU on the sum). See models.NGCF."""

    def _cross_check(self):
        for k in ("mess_dropout", "node_dropout"):
            v = getattr(self, k)
            if v and self.name != "ngcf":
                raise ConfigError(f"model.{k} = {v} is only used by model 'ngcf' (model is "
                                  f"{self.name!r})")

    def options(self) -> dict:
        """Keyword arguments of the chosen model beyond (dim, layers, init): see build_model."""
        if self.name == "ngcf":
            return {"mess_dropout": self.mess_dropout, "node_dropout": self.node_dropout,
                    "variant": self.ngcf_variant}
        return {}


@dataclass(frozen=True)
class SamplerConfig(_Section):
    """Sampler: how negatives are drawn."""

    SECTION: ClassVar[str] = "sampler"
    name: str = param("dns", "negative sampler; overrides the preset", choices=SAMPLER_NAMES)
    """uniform (RNS) | dns (H candidates, keep the highest-scored) | mixgcf (positive + hop
    mixing of H candidates: a synthetic negative) | irgan | advir (a generator samples the
    negative; see softbpr.samplers)."""
    pool_size: int = param(16, "dns/mixgcf: candidates per positive pair", ge=1, label="H")
    """H: candidates per positive pair for dns and mixgcf (the paper searches 8, 16, 32, 64;
    MixGCF's README uses 64 on Yelp2018, 32 on Alibaba, 16 on Amazon)."""
    temperature: float = param(0.2, "irgan/advir: negatives ~ softmax(generator score / T)",
                               gt=0.0, label="T")
    """irgan/advir: negatives are drawn from softmax(generator score / temperature) over the
    user's non-train items (0.2 as IRGAN's code samples for the discriminator)."""
    gen_dim: int = param(64, "irgan/advir: generator embedding size", ge=1)
    """irgan/advir: generator (MF with item bias) embedding size (IRGAN's ML-100K code: 5)."""
    gen_lr: float = param(1e-3, "irgan/advir: generator learning rate", gt=0.0)
    """irgan/advir: learning rate of the generator's policy-gradient steps (IRGAN: SGD 1e-3)."""
    gen_optimizer: str = param("adam", "irgan/advir: generator optimiser", choices=("adam", "sgd"))
    """irgan/advir: adam = Adam steps on the mean loss of a batch of users; sgd = IRGAN's plain
    SGD, one step of gen_lr per user (batched: SGD on the sum of the users' losses, which equals
    the per-user steps to first order). With Adam every coordinate moves about gen_lr per step
    whatever the gradient's size: G sharpens as it learns and the recommender's validation
    score falls after an early peak (docs/results: IRGAN and AdvIR with IRGAN's optimiser)."""
    gen_samples: int = param(2, "irgan/advir: generator draws per positive", ge=1)
    """irgan/advir: generator draws per positive in its policy-gradient epoch (IRGAN's code draws
    2 per positive)."""
    gen_epochs: int = param(1, "irgan/advir: generator epochs between training epochs", ge=0)
    """irgan/advir: generator epochs (over all users) between two training epochs; IRGAN's code
    alternates 100 discriminator epochs and 50 generator epochs."""
    gen_pretrain_epochs: int = param(10, "irgan/advir: DNS pre-training epochs of the generator",
                                     ge=0)
    """irgan/advir: epochs of DNS(5)-BPR pre-training of the generator before training (IRGAN
    starts G from a DNS-trained MF); 0 = start from the uniform(±0.05) init."""
    n_negatives: int = param(1, "uniform/dns_mn/ahns: negatives M per positive pair", ge=1,
                             label="M")
    """M: negatives per positive pair for uniform (M uniform draws), dns_mn (the M highest-scored
    of pool_size = N candidates: DNS(M, N)) and ahns (M groups of pool_size candidates, one pick
    each). The softmax losses (sl, bsl, psl, softmax_bpr) use them as one set; the BPR family
    averages the M one-negative losses."""
    ahns_alpha: float = param(1.0, "ahns: α in the target score β·(ŷ_ui + α)^(p+1)", label="α_A")
    """ahns: the shift α of the positive score in AHNS's target β·(ŷ_ui + α)^(p+1) (reference
    parser default 1.0, used for Amazon Phones/Tools; 0.1 on ML-1M, 0.5 on Sports)."""
    ahns_beta: float = param(0.1, "ahns: β in the target score β·(ŷ_ui + α)^(p+1)", label="β_A")
    """ahns: the scale β of AHNS's target score (reference parser default 0.1;
    0.4 on ML-1M)."""
    ahns_p: int = param(-2, "ahns: power p in the target score β·(ŷ_ui + α)^(p+1)", label="p_A")
    """ahns: the power p of AHNS's target β·(ŷ_ui + α)^(p+1) (an integer, as in the reference
    code; default -2: the target is β / (ŷ_ui + α))."""

    def _cross_check(self):
        if self.n_negatives > 1 and self.name not in MULTI_NEGATIVE_SAMPLERS:
            raise ConfigError(f"sampler.n_negatives = {self.n_negatives} is only used by samplers "
                              f"{', '.join(MULTI_NEGATIVE_SAMPLERS)} (sampler is {self.name!r})")
        if self.name == "dns_mn" and self.n_negatives > self.pool_size:
            raise ConfigError(f"sampler.n_negatives = {self.n_negatives} must be <= pool_size = "
                              f"{self.pool_size} for dns_mn (the M highest-scored of N "
                              "candidates)")


@dataclass(frozen=True)
class LossConfig(_Section):
    """Loss: the pairwise objective."""

    SECTION: ClassVar[str] = "loss"
    name: str = param("soft_bpr", "pairwise loss; overrides the preset", choices=LOSS_NAMES)
    """bpr | soft_bpr (-ln σ((1-α)(ŷ_ui-ŷ_uj))) | mixed_bpr (BPR on α e_i + (1-α) e_j) |
    adv_bpr (BPR + adv_weight · BPR on ε-perturbed embeddings: AdvIR's adversarial training)."""
    alpha: float | None = param(None, "α of soft/mixed BPR; soft factor τ = 1-α", ge=0.0, lt=1.0,
                                label="α", default_text=f"{DEFAULT_ALPHA} for soft_bpr and "
                                f"mixed_bpr, 0 for {' and '.join(NO_ALPHA_LOSSES)}")
    """α in [0, 1); the soft factor is τ = 1-α. Default DEFAULT_ALPHA = 0.9 (τ = 0.1) for
    soft_bpr/mixed_bpr; must be unset (or 0) for bpr and adv_bpr."""
    eps: float = param(0.01, "adv_bpr (AdvIR): L2 norm ε of the adversarial perturbation",
                       ge=0.0, label="ε")
    """adv_bpr: L2 norm ε of the per-row adversarial perturbation of the pooled vectors. APR's
    0.5 assumes BPR-pretrained embeddings; from scratch, ε >= 0.05 held training back (see
    losses.AdvBPR)."""
    adv_weight: float = param(1.0, "adv_bpr (AdvIR): weight of the adversarial term", ge=0.0)
    """adv_bpr: weight of the loss on the perturbed embeddings (APR's default λ = 1)."""
    hard_a: float = param(1.0, "hard_bpr: a in -ln((σ(c·x+b)+a)/(1+a))", ge=0.0, label="a")
    """hard_bpr: a >= 0, the floor of Hard-BPR's preference probability (0 = BPR's sigmoid)."""
    hard_b: float = param(-1.0, "hard_bpr: b in -ln((σ(c·x+b)+a)/(1+a))", label="b")
    """hard_bpr: b, the shift of the score gap x = ŷ_ui − ŷ_uj inside the sigmoid."""
    hard_c: float = param(0.8, "hard_bpr: c in -ln((σ(c·x+b)+a)/(1+a))", gt=0.0, label="c")
    """hard_bpr: c > 0, the slope on the score gap x (see losses.HardBPR for the defaults)."""
    rho: float = param(1.0, "softmax_bpr (Softmax(ρ,N)): robustness radius ρ", gt=0.0,
                       label="ρ")
    """softmax_bpr: ρ > 0; the N negatives are weighted by softmax(Z/τ) with τ = sqrt(Var(Z)/2ρ):
    small ρ -> uniform (BPR), large ρ -> the hardest (DNS). Reference default 1."""
    tau: float = param(0.15, "sl/bsl/psl: softmax temperature τ (BSL's τ1, PSL's τ*)", gt=0.0,
                       label="τ")
    """sl/bsl/psl: the temperature τ of log Σ exp(·/τ) (BSL's τ1, PSL's τ*)."""
    bsl_tau2: float = param(1.1, "bsl: τ2, the weight of the negative side (1 = SL)", gt=0.0,
                            label="τ₂")
    """bsl: τ2 in τ2·log Σ exp(s_uj/τ) − s_ui/τ; 1 = SL."""
    psl_tau_score: float = param(2.0, "psl: score scale τ_s, σ(d/τ_s) (IR-Benchmark's tau)",
                                 gt=0.0, label="τ_s")
    """psl: the pairwise score differences are divided by τ_s before the activation (2 keeps
    cosine differences in [-1, 1])."""
    psl_activation: str = param("tanh", "psl: σ(x) = ln(f(x)+1) with f = tanh, atan or relu",
                                choices=("tanh", "atan", "relu"))
    """psl: tanh -> ln(tanh(x)+1), atan -> ln(atan(x)+1), relu -> ln(ReLU(x+1))."""
    similarity: str = param("cosine", "sl/bsl/psl: score = cosine of the pooled vectors (as "
                            "the references) or their dot product", choices=("cosine", "dot"))
    """sl/bsl/psl: cosine (BSL's u_norm/i_norm, IR-Benchmark: training always normalises) or
    dot. Evaluation ranks by the dot product of the pooled vectors either way."""
    negatives: str = param("sampled", "sl/bsl/psl: the sampler's negatives, the batch's other "
                           "positives (in_batch), or both", choices=("sampled", "in_batch", "both"))
    """sl/bsl/psl: sampled (the sampler's M negatives), in_batch (the other positives of the
    batch, BSL's no_sample mode) or both."""
    in_batch_duplicates: str = param("keep", "sl/bsl/psl in-batch: keep the other rows of the "
                                     "pair's own item as negatives (BSL's code) or drop them",
                                     choices=("keep", "drop"))
    """sl/bsl/psl with in-batch negatives: keep (as BSL's code: a copy of the positive's own
    item in the batch is a negative) or drop those copies (matters on small catalogues)."""
    correction: str = param("none", "sl/bsl/psl in-batch: logq subtracts ln q_j (item j's "
                            "share of the training pairs) from each in-batch negative's logit",
                            choices=("none", "logq"))
    """sl/bsl/psl with in-batch negatives: none, or logq, the sampling-bias correction of Yi et
    al. (RecSys 2019): an in-batch slot holds item j with probability q_j = (j's training pairs)
    / (all training pairs), so in-batch negatives over-represent popular items; logq scores
    negative j with logit − ln q_j, which turns the in-batch sum into an estimate of the full
    softmax's. Needs negatives = in_batch (see losses/softmax.py for why not both)."""
    soften: float = param(0.0, "sl/bsl/psl: positive-dominated softening α: negative scores "
                          "-> α·ŷ_ui + (1-α)·ŷ_uj", ge=0.0, lt=1.0, label="α_s")
    """sl/bsl/psl: the SDNS paper's mixing carried over to the softmax losses: each negative
    becomes α e_i + (1-α) e_j (0 = off). For sl it equals the temperature τ/(1-α); see
    losses/softmax.py."""

    def _cross_check(self):
        if self.correction != "none" and self.name not in ("sl", "bsl", "psl"):
            raise ConfigError(f"loss.correction = {self.correction!r} is for the softmax losses "
                              f"with in-batch negatives (sl, bsl, psl), not loss {self.name!r}")
        if self.correction != "none" and self.negatives != "in_batch":
            raise ConfigError(f"loss.correction = {self.correction!r} corrects in-batch negatives"
                              f"; it needs loss.negatives = in_batch (got {self.negatives!r}: "
                              f"sampled columns would need their own correction)")
        a = self.alpha
        if self.name in NO_ALPHA_LOSSES:
            if a not in (None, 0.0):
                hint = ("loss.soften (the same mixing for the softmax losses)"
                        if self.name in ("sl", "bsl", "psl") else "loss 'soft_bpr' (or preset sdns)")
                raise ConfigError(f"loss.alpha = {a} has no effect with loss {self.name!r}; "
                                  f"use {hint}")
            object.__setattr__(self, "alpha", 0.0)
        elif a is None:
            object.__setattr__(self, "alpha", DEFAULT_ALPHA)


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Training: optimiser, epochs, early stopping, budgets."""

    SECTION: ClassVar[str] = "train"
    lr: float = param(1e-3, "Adam learning rate", gt=0.0, label="lr")
    """Adam learning rate."""
    reg: float = param(1e-4, "L2 weight λ on the batch's layer-0 embeddings", ge=0.0, label="λ")
    """λ of the L2 penalty on the batch's layer-0 rows: λ·Σ||e||²/2/batch (LightGCN's)."""
    reg_negatives: str = param("used", "L2 on the sampler's negatives: used = only when the loss "
                               "reads them; always = also with in-batch losses (a decay on one "
                               "uniformly drawn item per pair)", choices=("used", "always"))
    """Whether the sampler's negatives enter the L2 term. `used` (the default): only when the loss
    reads them, so an in-batch loss penalises the batch's users and positives only, as BSL's code
    does. `always`: they enter it with every loss; with an in-batch loss (whose sampler draws one
    uniform item per pair) that adds a weight decay on uniformly drawn items, which the loss
    otherwise never touches: softbpr's behaviour before commit 60f0605, which helped SL and BSL
    in-batch at λ = 1e-2 on ml-100k (docs/results/README.md, "The in-batch presets after the L2
    fix")."""
    batch_size: int = param(2048, "training pairs per step", ge=1)
    """Training pairs per step; an epoch visits every training pair once, shuffled."""
    epochs: int = param(100, "maximum epochs", ge=1)
    """Maximum number of epochs."""
    eval_every: int = param(5, "validate every N epochs and after the last", ge=1)
    """Evaluate on validation every N epochs (and after the last one)."""
    patience: int = param(4, "evaluations without improvement before stopping; 0 = never", ge=0)
    """Stop after this many evaluations without improvement of eval.metric (0 = never stop)."""
    seed: int = param(2020, "training seed: initialisation, shuffling, negatives", ge=0,
                      lt=2**63)
    """Training seed: initialisation, shuffling and negative sampling."""
    device: str = param("auto", "auto | cpu | cuda | cuda:N")
    """auto | cpu | cuda | cuda:N."""
    checkpoint_every: int = param(1, "write the resumable training state every N epochs", ge=1)
    """Write the full training state (state.pt, for --resume) every N epochs."""
    max_batches: int = param(0, "cap on batches per epoch, for smoke tests; 0 = full epochs",
                             ge=0)
    """Cap on batches per epoch (0 = every training pair, the default). A capped epoch trains on
    the first max_batches batches of that epoch's shuffled order: for smoke tests and CI-sized
    runs on large data, not for results."""
    time_limit: float = param(0.0, "training budget in minutes: stop after the epoch that passes "
                              "it, keep the best weights; 0 = none", ge=0.0)
    """Wall-clock budget of the training loop in minutes (0 = none). When an epoch ends past it,
    training stops (result.json: "stop_reason": "time_limit"), the best weights so far are
    restored and tested, as on early stopping. For budgeted runs on shared machines."""

    def _cross_check(self):
        if not re.fullmatch(r"auto|(cpu|cuda)(:[0-9]+)?", self.device):
            raise ConfigError(f"train.device = {self.device!r} is not a device name; choose "
                              "auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class EvalConfig(_Section):
    """Evaluation: cut-offs and the model-selection metric."""

    SECTION: ClassVar[str] = "eval"
    topk: tuple[int, ...] = param((20, 50), "cut-offs K of Recall@K and NDCG@K, e.g. 20,50",
                                  ge=1, label="K")
    """Cut-offs K for Recall@K and NDCG@K."""
    metric: str = param("ndcg@50", "validation metric for early stopping: recall@K or ndcg@K")
    """Validation metric for early stopping and model selection (recall@K or ndcg@K)."""
    batch_users: int = param(0, "users scored at once; 0 = auto", ge=0)
    """Users scored at once (0 = auto: about 2^25 scores per batch)."""
    rank_by: str = param("dot", "rank items at evaluation and serving by the dot product of the "
                         "pooled vectors or by their cosine", choices=("dot", "cosine"))
    """dot (LightGCN's, RecBole's, IR-Benchmark's) or cosine (BSL's Gowalla and ML-1M runs,
    `generate_mode = cosine`): the ranking the metrics, early stopping and the Recommender use.
    With cosine the run's embeddings.npz and the Recommender hold unit-length vectors, so any
    dot-product consumer (an ANN index) ranks as evaluated. Training is unaffected (the
    softmax losses' loss.similarity is their training score)."""
    valid_users: int = param(100_000, "validate on a seeded sample of this many users when "
                             "more have validation items (0 = all); the test scores all", ge=0)
    """Validation on large data: a seeded sample (data.seed) of this many of the users with
    validation items, the same at every evaluation (1M users x 336k items take an hour per full
    validation on one core); 0 = all users. Said in the output and in result.json
    ("valid_users"); the final test is exact over all users."""

    def _cross_check(self):
        if not self.topk:
            raise ConfigError("eval.topk needs at least one cut-off, e.g. 20,50")
        k = self.metric.partition("@")[2]
        if (not re.fullmatch(r"(recall|ndcg)@[1-9][0-9]*", self.metric)
                or int(k) not in self.topk):
            raise ConfigError(f"eval.metric = {self.metric!r} must be recall@K or ndcg@K with K "
                              f"in topk {list(self.topk)}")


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "rns": {"sampler": {"name": "uniform"}, "loss": {"name": "bpr"}},
    "dns": {"sampler": {"name": "dns"}, "loss": {"name": "bpr"}},
    "sdns": {"sampler": {"name": "dns"}, "loss": {"name": "soft_bpr"}},
    "sdns-mix": {"sampler": {"name": "dns"}, "loss": {"name": "mixed_bpr"}},
    # baselines of the paper (samplers.py and losses.py document each)
    "mixgcf": {"sampler": {"name": "mixgcf"}, "loss": {"name": "bpr"}},
    # irgan/advir with IRGAN's generator optimiser (plain SGD, a step per user) instead of Adam;
    # listed first so that `Experiment.method` tells them apart from irgan/advir (which keep
    # their keys, hence their sweep points' identities)
    "irgan-sgd": {"sampler": {"name": "irgan", "gen_optimizer": "sgd"}, "loss": {"name": "bpr"}},
    "advir-sgd": {"sampler": {"name": "advir", "gen_optimizer": "sgd"},
                  "loss": {"name": "adv_bpr"}},
    "irgan": {"sampler": {"name": "irgan"}, "loss": {"name": "bpr"}},
    "advir": {"sampler": {"name": "advir"}, "loss": {"name": "adv_bpr"}},
    # beyond the paper (issue 14; samplers/ and losses/ document each, with reference defaults)
    "dns-mn": {"sampler": {"name": "dns_mn", "pool_size": 200, "n_negatives": 2},
               "loss": {"name": "bpr"}},
    "softmax-rho": {"sampler": {"name": "uniform", "n_negatives": 200},
                    "loss": {"name": "softmax_bpr"}},
    "ahns": {"sampler": {"name": "ahns", "pool_size": 32}, "loss": {"name": "bpr"}},
    "hard-bpr": {"sampler": {"name": "dns"}, "loss": {"name": "hard_bpr"}},
    "sl": {"sampler": {"name": "uniform", "n_negatives": 256},
           "loss": {"name": "sl", "negatives": "sampled"}},
    "sl-batch": {"sampler": {"name": "uniform", "n_negatives": 1},
                 "loss": {"name": "sl", "negatives": "in_batch", "correction": "none"}},
    "sl-batch-logq": {"sampler": {"name": "uniform", "n_negatives": 1},
                      "loss": {"name": "sl", "negatives": "in_batch", "correction": "logq"}},
    "sl-dns": {"sampler": {"name": "dns_mn", "pool_size": 256, "n_negatives": 64},
               "loss": {"name": "sl", "negatives": "sampled"}},
    "bsl": {"sampler": {"name": "uniform", "n_negatives": 256},
            "loss": {"name": "bsl", "negatives": "sampled"}},
    "bsl-batch": {"sampler": {"name": "uniform", "n_negatives": 1},
                  "loss": {"name": "bsl", "negatives": "in_batch", "correction": "none"}},
    "bsl-batch-logq": {"sampler": {"name": "uniform", "n_negatives": 1},
                       "loss": {"name": "bsl", "negatives": "in_batch", "correction": "logq"}},
    "psl": {"sampler": {"name": "uniform", "n_negatives": 256},
            "loss": {"name": "psl", "negatives": "sampled", "tau": 0.05}},
}

SECTIONS = {"data": DataConfig, "model": ModelConfig, "sampler": SamplerConfig,
            "loss": LossConfig, "train": TrainConfig, "eval": EvalConfig}

# Flat names (TOML top-level keys, sweep grids, CLI flags with '-' -> '_') are the field names,
# except these, where two sections share a field name or the section names the component.
_FLAT_ALIASES = {("data", "seed"): "data_seed", ("model", "name"): "model",
                 ("sampler", "name"): "sampler", ("loss", "name"): "loss",
                 ("train", "seed"): "seed"}

FLAT: dict[str, tuple[str, str]] = {
    _FLAT_ALIASES.get((s, f.name), f.name): (s, f.name)
    for s, cls in SECTIONS.items() for f in fields(cls)}
"""Flat name -> (section, field), for every field of every section."""
assert len(FLAT) == sum(len(fields(c)) for c in SECTIONS.values()), "a flat name is ambiguous"


def field_of(flat: str) -> dataclasses.Field:
    """The dataclass field behind a flat name (its metadata holds help, bounds, choices)."""
    s, k = FLAT[flat]
    return next(f for f in fields(SECTIONS[s]) if f.name == k)


def _section_field(section: str, key: str) -> dataclasses.Field:
    return next(f for f in fields(SECTIONS[section]) if f.name == key)


def label(flat: str) -> str:
    """Short display name of a parameter for tables and figures: label('pool_size') == 'H',
    label('alpha') == 'α'; the flat name itself when it has no label (or is not a field)."""
    return field_of(flat).metadata.get("label", flat) if flat in FLAT else flat


@dataclass(frozen=True)
class Experiment:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def method(self) -> str:
        """The first preset whose choices (the sampler and loss names, and any other choice
        field it sets, e.g. loss.negatives) all match, else 'sampler+loss'. Numbers a preset
        sets (pool_size, ...) are hyper-parameters: they do not decide the method."""
        for name, p in PRESETS.items():
            if all(getattr(getattr(self, s), k) == v for s, kv in p.items()
                   for k, v in kv.items() if "choices" in _section_field(s, k).metadata):
                return name
        return f"{self.sampler.name}+{self.loss.name}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval"]["topk"] = list(d["eval"]["topk"])
        d["method"] = self.method
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Experiment:
        d = {k: v for k, v in d.items() if k != "method"}
        return build(d)


def _suggest(key: str, options) -> str:
    near = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


@cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(section: str, key: str, value, hint):
    """`value` as the field's type `hint`: ints are accepted for floats, "20,50" and lists for
    tuple[int, ...]; None only where the type allows it. Anything else raises ConfigError."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    if typing.get_origin(hint) is tuple:  # tuple[int, ...]
        items = value.split(",") if isinstance(value, str) else value
        try:
            return tuple(int(x) if isinstance(x, str) else _scalar(x, int) for x in items
                         if not (isinstance(x, str) and not x.strip()))
        except (TypeError, ValueError):
            raise ConfigError(f"{section}.{key} must be integers like '20,50', "
                              f"got {value!r}") from None
    try:
        return _scalar(value, hint)
    except TypeError:
        raise ConfigError(f"{section}.{key} must be {hint.__name__}, got {value!r}") from None


def _scalar(value, typ: type):
    if isinstance(value, bool):  # bool is an int subclass, but True is no epoch count
        raise TypeError(value)
    if typ is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, typ):
        raise TypeError(value)
    return value


def _check(section: str, f: dataclasses.Field, value) -> None:
    """The field's choices and bounds (each element's, for tuples); None passes (unset)."""
    m = f.metadata
    if value is None:
        return
    if "choices" in m and value not in m["choices"]:
        raise ConfigError(f"{section}.{f.name} = {value!r} is not one of: "
                          f"{', '.join(m['choices'])}")
    ok = all(("ge" not in m or v >= m["ge"]) and ("gt" not in m or v > m["gt"])
             and ("le" not in m or v <= m["le"]) and ("lt" not in m or v < m["lt"])
             for v in (value if isinstance(value, tuple) else (value,)))
    if not ok:
        raise ConfigError(f"{section}.{f.name} must be {bounds(f)}, got {value!r}")


def bounds(f: dataclasses.Field) -> str:
    """The field's bounds in words: 'in [0, 1)', '>= 1', '> 0'; '' when it has none."""
    m = f.metadata
    lo = ("[", m["ge"]) if "ge" in m else ("(", m["gt"]) if "gt" in m else None
    hi = ("]", m["le"]) if "le" in m else (")", m["lt"]) if "lt" in m else None

    def num(x) -> str:  # ints exactly (2**63 is not 9.22337e+18), floats short
        return str(x) if isinstance(x, int) else f"{x:g}"

    if lo and hi:
        return f"in {lo[0]}{num(lo[1])}, {num(hi[1])}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {num(lo[1])}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {num(hi[1])}"
    return ""


def merge(base: dict, updates: dict, origin: str) -> dict:
    """Apply `updates` (tables, flat names and `preset`) onto nested dict `base`. Values are
    checked when the sections are built (`build`), keys here."""
    out = {s: dict(base.get(s, {})) for s in SECTIONS}
    if "preset" in updates and updates["preset"] is not None:
        p = updates["preset"]
        if not isinstance(p, str) or p not in PRESETS:
            raise ConfigError(f"{origin}: unknown preset {p!r}{_suggest(str(p), PRESETS)}; "
                              f"choose one of {', '.join(PRESETS)}")
        for s, kv in PRESETS[p].items():
            out[s].update(kv)
    loss_named = "loss" in updates or "preset" in updates or (
        isinstance(updates.get("loss"), dict) and "name" in updates["loss"])
    alpha_given = "alpha" in updates or (isinstance(updates.get("loss"), dict)
                                         and "alpha" in updates["loss"])
    for key, value in updates.items():
        if key == "preset":
            continue
        if key in SECTIONS and isinstance(value, dict):
            valid = {f.name for f in fields(SECTIONS[key])}
            for k, v in value.items():
                if k not in valid:
                    raise ConfigError(f"{origin}: unknown key '{key}.{k}'{_suggest(k, valid)}")
                out[key][k] = v
        elif key in FLAT:
            s, k = FLAT[key]
            out[s][k] = value
        else:
            raise ConfigError(f"{origin}: unknown key {key!r}"
                              f"{_suggest(key, list(FLAT) + list(SECTIONS) + ['preset'])}")
    if loss_named and not alpha_given and out["loss"].get("name") in NO_ALPHA_LOSSES:
        out["loss"].pop("alpha", None)  # an inherited α must not block switching to plain BPR
    return out


def build(nested: dict) -> Experiment:
    try:
        return Experiment(**{s: SECTIONS[s](**nested.get(s, {})) for s in SECTIONS})
    except TypeError as e:  # a wrong key in a nested dict given from Python
        raise ConfigError(str(e)) from None


def load(path: str | Path | None = None, overrides: dict | None = None,
         overrides_from: str = "overrides") -> Experiment:
    """Experiment from defaults, an optional TOML file, then `overrides` (flat or nested). An
    error names where the offending key or value came from: the file, or `overrides_from` (the
    CLI passes "command line")."""
    nested: dict = {}
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_bytes().decode("utf-8-sig"))  # a BOM is not TOML
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{p}: is a folder, --config; give a TOML file") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}), --config; save it as "
                              "UTF-8 TOML") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from None
        nested = merge(nested, doc, str(p))
    layers = [(str(path), nested)] if path is not None else []
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        layers.append((overrides_from, given))
        nested = merge(nested, given, overrides_from)
    try:
        return build(nested)
    except ConfigError as e:
        raise ConfigError(f"{culprit(e, layers)}: {e}") from None


def culprit(err: ConfigError, layers: list[tuple[str, dict]]) -> str:
    """Where the value that failed `build` came from, for an error message: of `layers` (label,
    updates as `merge` takes them), applied in this order over the defaults, the last one that
    fails the same way on its own (a later layer overrides an earlier one); else, when the
    failure needs several layers together, their labels joined by " with "."""
    for label, updates in reversed(layers):
        if not updates:
            continue
        try:
            build(merge({}, updates, label))
        except ConfigError as alone:
            if str(alone) == str(err):
                return label
    return " with ".join(label for label, updates in layers if updates) or "defaults"


def with_updates(exp: Experiment, **flat) -> Experiment:
    """A copy of `exp` with flat-name updates, e.g. with_updates(exp, lr=1e-3, preset='dns')."""
    return build(merge(exp.to_dict(), flat, "update"))


__all__ = [
    "FLAT",
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "Experiment",
    "LossConfig",
    "ModelConfig",
    "SamplerConfig",
    "TrainConfig",
    "culprit",
    "field_of",
    "label",
    "load",
    "param",
    "replace",
    "with_updates",
]
