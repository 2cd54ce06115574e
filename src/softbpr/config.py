"""Typed, frozen experiment configuration; every default is visible here.

An `Experiment` has six sections (data, model, sampler, loss, train, eval). A TOML file may set
them as tables (``[train] lr = 1e-3``), by the flat names the CLI uses (``lr = 1e-3``,
``pool_size = 32``), or pick a `preset` (a sampler + loss pair). Precedence, lowest first:
defaults < preset < explicit keys; CLI flags are applied after the file in the same way.
Unknown keys raise `ConfigError` naming the key and the closest valid one.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A bad configuration key or value; the message names it."""


def _choice(section: str, key: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{key} = {value!r} is not one of: {', '.join(choices)}")


@dataclass(frozen=True)
class DataConfig:
    data: str = "synthetic"
    """Built-in dataset name (`synthetic`, `synthetic-small`) or a path (file or folder)."""
    format: str = "auto"
    """auto | lightgcn (folder with train.txt/test.txt[/valid.txt], or a *train* file) | csv (one
    delimited file: comma, TAB, '::', ';' or spaces) | recbole (.inter) | parquet."""
    split: str = "auto"
    """auto | given | temporal | random. auto: given for LightGCN folders, temporal when the
    data has timestamps (the paper's protocol), else random."""
    columns: str = "user,item,timestamp"
    """Column names of a delimited file in order (user, item, timestamp; others are ignored,
    e.g. ``user,item,rating,timestamp`` for MovieLens u.data). A header line overrides this."""
    kcore: int = 0
    """Drop users and items with fewer than k interactions, repeatedly (0/1 = off)."""
    valid_ratio: float = 0.1
    """Per-user share of interactions held out for validation (temporal/random splits, and of
    train items when a given split has no valid file)."""
    test_ratio: float = 0.1
    """Per-user share held out for test (temporal/random splits)."""
    seed: int = 2024
    """Seed of the data: synthetic generation and random splits (kept apart from the training
    seed so that runs over several training seeds share one dataset)."""

    def __post_init__(self):
        _choice("data", "format", self.format, ("auto", "lightgcn", "csv", "recbole", "parquet"))
        _choice("data", "split", self.split, ("auto", "given", "temporal", "random"))
        for k in ("valid_ratio", "test_ratio"):
            v = getattr(self, k)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"data.{k} must be in [0, 1), got {v}")
        if self.valid_ratio + self.test_ratio >= 1.0:
            raise ConfigError("data.valid_ratio + data.test_ratio must be < 1")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lightgcn"
    """lightgcn | ngcf | mf."""
    dim: int = 64
    """Embedding size d (NGCF's pooled vectors are d * (layers + 1) wide)."""
    layers: int = 3
    """Propagation layers L of LightGCN / NGCF (ignored by mf)."""
    init: str = "xavier"
    """xavier (uniform, as MixGCF's code) | normal (N(0, 0.1^2), as LightGCN-PyTorch)."""
    mess_dropout: float = 0.0
    """NGCF message dropout on each layer's output, training only (0 = off, as MixGCF's README
    runs; the NGCF code uses 0.1)."""
    node_dropout: float = 0.0
    """NGCF node dropout: share of propagation-matrix entries dropped per training pass (0 = off
    as in both reference READMEs; 0.1 when enabled there)."""
    ngcf_variant: str = "original"
    """original (the NGCF authors' code: D^-1 (A+I), one LeakyReLU per branch) | mixgcf
    (MixGCF's port: LightGCN's D^-1/2 A D^-1/2, one LeakyReLU on the sum). See models.NGCF."""

    def __post_init__(self):
        _choice("model", "name", self.name, ("lightgcn", "ngcf", "mf"))
        _choice("model", "init", self.init, ("xavier", "normal"))
        _choice("model", "ngcf_variant", self.ngcf_variant, ("original", "mixgcf"))
        if self.dim < 1 or self.layers < 0:
            raise ConfigError(f"model.dim must be >= 1 and model.layers >= 0, got "
                              f"{self.dim}, {self.layers}")
        for k in ("mess_dropout", "node_dropout"):
            v = getattr(self, k)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"model.{k} must be in [0, 1), got {v}")
            if v and self.name != "ngcf":
                raise ConfigError(f"model.{k} = {v} is only used by model 'ngcf' (model is "
                                  f"{self.name!r})")

    def options(self) -> dict:
        """Keyword arguments of the chosen model beyond (dim, layers, init): see build_model."""
        if self.name == "ngcf":
            return {"mess_dropout": self.mess_dropout, "node_dropout": self.node_dropout,
                    "variant": self.ngcf_variant}
        return {}


GAN_SAMPLERS = ("irgan", "advir")


@dataclass(frozen=True)
class SamplerConfig:
    name: str = "dns"
    """uniform (RNS) | dns (H candidates, keep the highest-scored) | mixgcf (positive + hop
    mixing of H candidates: a synthetic negative) | irgan | advir (a generator samples the
    negative; see samplers.py)."""
    pool_size: int = 16
    """H: candidates per positive pair for dns and mixgcf (the paper searches 8, 16, 32, 64;
    MixGCF's README uses 64 on Yelp2018, 32 on Alibaba, 16 on Amazon)."""
    temperature: float = 0.2
    """irgan/advir: negatives are drawn from softmax(generator score / temperature) over the
    user's non-train items (0.2 as IRGAN's code samples for the discriminator)."""
    gen_dim: int = 64
    """irgan/advir: generator (MF with item bias) embedding size (IRGAN's ML-100K code: 5)."""
    gen_lr: float = 1e-3
    """irgan/advir: Adam learning rate of the generator's policy-gradient steps."""
    gen_samples: int = 2
    """irgan/advir: generator draws per positive in its policy-gradient epoch (IRGAN's code draws
    2 per positive)."""
    gen_epochs: int = 1
    """irgan/advir: generator epochs (over all users) between two training epochs; IRGAN's code
    alternates 100 discriminator epochs and 50 generator epochs."""
    gen_pretrain_epochs: int = 10
    """irgan/advir: epochs of DNS(5)-BPR pre-training of the generator before training (IRGAN
    starts G from a DNS-trained MF); 0 = start from the uniform(±0.05) init."""

    def __post_init__(self):
        _choice("sampler", "name", self.name, ("uniform", "dns", "mixgcf", *GAN_SAMPLERS))
        if not isinstance(self.pool_size, int) or self.pool_size < 1:
            raise ConfigError(f"sampler.pool_size (H) must be an integer >= 1, got "
                              f"{self.pool_size!r}")
        if not self.temperature > 0:
            raise ConfigError(f"sampler.temperature must be > 0, got {self.temperature}")
        if not self.gen_lr > 0:
            raise ConfigError(f"sampler.gen_lr must be > 0, got {self.gen_lr}")
        for k in ("gen_dim", "gen_samples"):
            if getattr(self, k) < 1:
                raise ConfigError(f"sampler.{k} must be >= 1, got {getattr(self, k)}")
        for k in ("gen_epochs", "gen_pretrain_epochs"):
            if getattr(self, k) < 0:
                raise ConfigError(f"sampler.{k} must be >= 0, got {getattr(self, k)}")

    def options(self) -> dict:
        """Keyword arguments of the chosen sampler beyond pool_size: see build_sampler."""
        if self.name in GAN_SAMPLERS:
            return {"temperature": self.temperature, "gen_dim": self.gen_dim,
                    "gen_lr": self.gen_lr, "gen_samples": self.gen_samples,
                    "gen_epochs": self.gen_epochs, "pretrain_epochs": self.gen_pretrain_epochs}
        return {}


NO_ALPHA_LOSSES = ("bpr", "adv_bpr")


@dataclass(frozen=True)
class LossConfig:
    name: str = "soft_bpr"
    """bpr | soft_bpr (-ln σ((1-α)(ŷ_ui-ŷ_uj))) | mixed_bpr (BPR on α e_i + (1-α) e_j) |
    adv_bpr (BPR + adv_weight · BPR on ε-perturbed embeddings: AdvIR's adversarial training)."""
    alpha: float | None = None
    """α in [0, 1); the soft factor is τ = 1-α. Default 0.9 (τ = 0.1) for soft_bpr/mixed_bpr;
    must be unset (or 0) for bpr and adv_bpr."""
    eps: float = 0.01
    """adv_bpr: L2 norm ε of the per-row adversarial perturbation of the pooled vectors. APR's
    0.5 assumes BPR-pretrained embeddings; from scratch, ε >= 0.05 held training back (see
    losses.AdvBPR)."""
    adv_weight: float = 1.0
    """adv_bpr: weight of the loss on the perturbed embeddings (APR's default λ = 1)."""

    def __post_init__(self):
        _choice("loss", "name", self.name, ("bpr", "soft_bpr", "mixed_bpr", "adv_bpr"))
        if self.eps < 0 or self.adv_weight < 0:
            raise ConfigError(f"loss.eps and loss.adv_weight must be >= 0, got {self.eps}, "
                              f"{self.adv_weight}")
        a = self.alpha
        if self.name in NO_ALPHA_LOSSES:
            if a not in (None, 0, 0.0):
                raise ConfigError(f"loss.alpha = {a} has no effect with loss {self.name!r}; "
                                  "use loss 'soft_bpr' (or preset sdns)")
            object.__setattr__(self, "alpha", 0.0)
        else:
            a = 0.9 if a is None else float(a)
            if not 0.0 <= a < 1.0:
                raise ConfigError(f"loss.alpha must be in [0, 1), got {a}")
            object.__setattr__(self, "alpha", a)

    def options(self) -> dict:
        """Keyword arguments of the chosen loss beyond alpha: see losses.build_loss."""
        if self.name == "adv_bpr":
            return {"eps": self.eps, "weight": self.adv_weight}
        return {}


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3
    """Adam learning rate."""
    reg: float = 1e-4
    """λ of the L2 penalty on the batch's layer-0 rows: λ·Σ||e||²/2/batch (LightGCN's)."""
    batch_size: int = 2048
    """Training pairs per step; an epoch visits every training pair once, shuffled."""
    epochs: int = 100
    """Maximum number of epochs."""
    eval_every: int = 5
    """Evaluate on validation every N epochs (and after the last one)."""
    patience: int = 4
    """Stop after this many evaluations without improvement of eval.metric (0 = never stop)."""
    seed: int = 2020
    """Training seed: initialisation, shuffling and negative sampling."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    checkpoint_every: int = 1
    """Write the full training state (state.pt, for --resume) every N epochs."""
    max_batches: int = 0
    """Cap on batches per epoch (0 = every training pair, the default). A capped epoch trains on
    the first max_batches batches of that epoch's shuffled order: for smoke tests and CI-sized
    runs on large data, not for results."""
    time_limit: float = 0.0
    """Wall-clock budget of the training loop in minutes (0 = none). When an epoch ends past it,
    training stops (result.json: "stop_reason": "time_limit"), the best weights so far are
    restored and tested, as on early stopping. For budgeted runs on shared machines."""

    def __post_init__(self):
        for k in ("lr",):
            if not getattr(self, k) > 0:
                raise ConfigError(f"train.{k} must be > 0, got {getattr(self, k)}")
        if self.reg < 0:
            raise ConfigError(f"train.reg must be >= 0, got {self.reg}")
        for k in ("batch_size", "epochs", "eval_every", "checkpoint_every"):
            if getattr(self, k) < 1:
                raise ConfigError(f"train.{k} must be >= 1, got {getattr(self, k)}")
        if self.patience < 0:
            raise ConfigError(f"train.patience must be >= 0, got {self.patience}")
        if self.max_batches < 0:
            raise ConfigError(f"train.max_batches must be >= 0 (0 = no cap), got {self.max_batches}")
        if not self.time_limit >= 0:
            raise ConfigError(f"train.time_limit must be >= 0 minutes (0 = none), "
                              f"got {self.time_limit}")


@dataclass(frozen=True)
class EvalConfig:
    topk: tuple[int, ...] = (20, 50)
    """Cut-offs K for Recall@K and NDCG@K."""
    metric: str = "ndcg@50"
    """Validation metric for early stopping and model selection (recall@K or ndcg@K)."""
    batch_users: int = 0
    """Users scored at once (0 = auto: about 2^25 scores per batch)."""

    def __post_init__(self):
        ks = tuple(int(k) for k in self.topk)
        if not ks or min(ks) < 1:
            raise ConfigError(f"eval.topk needs positive integers, got {self.topk!r}")
        object.__setattr__(self, "topk", ks)
        name, _, k = self.metric.partition("@")
        if name not in ("recall", "ndcg") or not k.isdigit() or int(k) not in ks:
            raise ConfigError(f"eval.metric = {self.metric!r} must be recall@K or ndcg@K with K "
                              f"in topk {list(ks)}")


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "rns": {"sampler": {"name": "uniform"}, "loss": {"name": "bpr"}},
    "dns": {"sampler": {"name": "dns"}, "loss": {"name": "bpr"}},
    "sdns": {"sampler": {"name": "dns"}, "loss": {"name": "soft_bpr"}},
    "sdns-mix": {"sampler": {"name": "dns"}, "loss": {"name": "mixed_bpr"}},
    # baselines of the paper (samplers.py and losses.py document each)
    "mixgcf": {"sampler": {"name": "mixgcf"}, "loss": {"name": "bpr"}},
    "irgan": {"sampler": {"name": "irgan"}, "loss": {"name": "bpr"}},
    "advir": {"sampler": {"name": "advir"}, "loss": {"name": "adv_bpr"}},
}

SECTIONS = {"data": DataConfig, "model": ModelConfig, "sampler": SamplerConfig,
            "loss": LossConfig, "train": TrainConfig, "eval": EvalConfig}

# flat names (CLI flags with '-' -> '_') -> (section, field)
FLAT: dict[str, tuple[str, str]] = {
    "data": ("data", "data"), "format": ("data", "format"), "split": ("data", "split"),
    "columns": ("data", "columns"), "kcore": ("data", "kcore"),
    "valid_ratio": ("data", "valid_ratio"), "test_ratio": ("data", "test_ratio"),
    "data_seed": ("data", "seed"),
    "model": ("model", "name"), "dim": ("model", "dim"), "layers": ("model", "layers"),
    "init": ("model", "init"), "mess_dropout": ("model", "mess_dropout"),
    "node_dropout": ("model", "node_dropout"), "ngcf_variant": ("model", "ngcf_variant"),
    "sampler": ("sampler", "name"), "pool_size": ("sampler", "pool_size"),
    "temperature": ("sampler", "temperature"), "gen_dim": ("sampler", "gen_dim"),
    "gen_lr": ("sampler", "gen_lr"), "gen_samples": ("sampler", "gen_samples"),
    "gen_epochs": ("sampler", "gen_epochs"),
    "gen_pretrain_epochs": ("sampler", "gen_pretrain_epochs"),
    "loss": ("loss", "name"), "alpha": ("loss", "alpha"), "eps": ("loss", "eps"),
    "adv_weight": ("loss", "adv_weight"),
    "lr": ("train", "lr"), "reg": ("train", "reg"), "batch_size": ("train", "batch_size"),
    "epochs": ("train", "epochs"), "eval_every": ("train", "eval_every"),
    "patience": ("train", "patience"),
    "checkpoint_every": ("train", "checkpoint_every"), "seed": ("train", "seed"),
    "device": ("train", "device"), "max_batches": ("train", "max_batches"),
    "time_limit": ("train", "time_limit"),
    "topk": ("eval", "topk"), "metric": ("eval", "metric"), "batch_users": ("eval", "batch_users"),
}


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
        """The preset name matching (sampler, loss), else 'sampler+loss'."""
        for name, p in PRESETS.items():
            if (p["sampler"]["name"], p["loss"]["name"]) == (self.sampler.name, self.loss.name):
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


def _coerce(section: str, key: str, value):
    """Type-check a value against the dataclass field; ints are accepted for floats."""
    cls = SECTIONS[section]
    ftype = {f.name: f.type for f in fields(cls)}[key]
    if key == "topk":
        if isinstance(value, str):
            try:
                value = [int(x) for x in value.split(",") if x.strip()]
            except ValueError:
                raise ConfigError(f"eval.topk must be integers like '20,50', got {value!r}") from None
        return tuple(value)
    if ftype in ("float", "float | None") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expect = {"int": int, "float": float, "str": str}.get(ftype.split(" |")[0])
    if expect is not None and not (isinstance(value, expect) and not isinstance(value, bool)):
        if not (value is None and "None" in ftype):
            raise ConfigError(f"{section}.{key} must be {ftype}, got {value!r}")
    return value


def merge(base: dict, updates: dict, origin: str) -> dict:
    """Apply `updates` (tables, flat names and `preset`) onto nested dict `base`."""
    out = {s: dict(base.get(s, {})) for s in SECTIONS}
    if "preset" in updates and updates["preset"] is not None:
        p = updates["preset"]
        if p not in PRESETS:
            raise ConfigError(f"{origin}: unknown preset {p!r}{_suggest(p, PRESETS)}; choose one "
                              f"of {', '.join(PRESETS)}")
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
                out[key][k] = _coerce(key, k, v)
        elif key in FLAT:
            s, k = FLAT[key]
            out[s][k] = _coerce(s, k, value)
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


def load(path: str | Path | None = None, overrides: dict | None = None) -> Experiment:
    """Experiment from defaults, an optional TOML file, then `overrides` (flat or nested)."""
    nested: dict = {}
    if path is not None:
        p = Path(path)
        try:
            with open(p, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from None
        nested = merge(nested, doc, str(p))
    if overrides:
        nested = merge(nested, {k: v for k, v in overrides.items() if v is not None}, "flag")
    return build(nested)


def with_updates(exp: Experiment, **flat) -> Experiment:
    """A copy of `exp` with flat-name updates, e.g. with_updates(exp, lr=1e-3, preset='dns')."""
    return build(merge(exp.to_dict(), flat, "update"))


__all__ = [
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "Experiment",
    "LossConfig",
    "ModelConfig",
    "SamplerConfig",
    "TrainConfig",
    "load",
    "replace",
    "with_updates",
]
