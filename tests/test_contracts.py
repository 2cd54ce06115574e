"""Contracts between the config (the one source of every parameter), the CLI generated from it,
and the component registries (samplers, losses, models, the GAN generator's optimisers): every
registered sampler, loss and model round-trips CLI flags -> config -> object, and the names
agree everywhere."""

import dataclasses
import re

import pytest
import torch

from softbpr import config
from softbpr.cli import build_parser
from softbpr.cli.train import config_flags, config_overrides
from softbpr.losses import LOSSES, build_loss
from softbpr.models import MODELS, build_model
from softbpr.samplers import SAMPLERS, build_sampler
from softbpr.samplers.gan import GEN_OPTIMIZERS

REGISTRIES = {"sampler": SAMPLERS, "loss": LOSSES, "model": MODELS,
              "gen_optimizer": GEN_OPTIMIZERS}

# The `softbpr train` flags before they were generated from the config: a public interface.
OLD_TRAIN_FLAGS = [
    "--data", "--format", "--split", "--columns", "--kcore", "--valid-ratio", "--test-ratio",
    "--data-seed", "--model", "--preset", "--sampler", "--loss", "--pool-size", "--alpha",
    "--temperature", "--gen-dim", "--gen-lr", "--gen-samples", "--gen-epochs",
    "--gen-pretrain-epochs", "--eps", "--adv-weight", "--lr", "--reg", "--dim", "--layers",
    "--init", "--mess-dropout", "--node-dropout", "--ngcf-variant", "--batch-size", "--epochs",
    "--eval-every", "--patience", "--topk", "--metric", "--seed", "--device", "--checkpoint-every",
    "--max-batches", "--time-limit",
]


def experiment_from_cli(*flags: str) -> config.Experiment:
    """What `softbpr train FLAGS` trains, through the CLI's own parser and override path."""
    args = build_parser().parse_args(["train", *flags])
    return config.load(args.config, config_overrides(args))


def test_registries_and_config_choices_agree():
    for flat, registry in REGISTRIES.items():
        choices = config.field_of(flat).metadata["choices"]
        assert sorted(choices) == sorted(registry), flat
    for name, p in config.PRESETS.items():
        assert p["sampler"]["name"] in SAMPLERS and p["loss"]["name"] in LOSSES, name


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_round_trips(name):
    exp = experiment_from_cli("--sampler", name, "--pool-size", "3")
    assert exp.sampler.name == name and exp.sampler.pool_size == 3
    assert type(build_sampler(exp.sampler)) is SAMPLERS[name]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_round_trips(name):
    alpha = () if name in config.NO_ALPHA_LOSSES else ("--alpha", "0.7")
    exp = experiment_from_cli("--loss", name, *alpha, "--eps", "0.02")
    loss = build_loss(exp.loss)
    assert type(loss) is LOSSES[name]
    assert loss.alpha == (0.0 if name in config.NO_ALPHA_LOSSES else 0.7)
    u, pos, neg = torch.randn(3, 5, 4).unbind(0)
    assert torch.isfinite(loss(u, pos, neg))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_round_trips(name):
    exp = experiment_from_cli("--model", name, "--dim", "8", "--layers", "2")
    m = exp.model
    model = build_model(m.name, 5, 7, m.dim, m.layers, m.init, torch.Generator().manual_seed(0),
                        **m.options())
    assert type(model) is MODELS[name]


def test_every_preset_round_trips():
    for name in config.PRESETS:
        exp = experiment_from_cli("--preset", name)
        assert exp.method == name
        assert type(build_sampler(exp.sampler)) is SAMPLERS[exp.sampler.name]
        assert type(build_loss(exp.loss)) is LOSSES[exp.loss.name]


def _fields():
    return [(flat, config.field_of(flat)) for flat in config.FLAT]


@pytest.mark.parametrize("flat,f", _fields(), ids=[flat for flat, _ in _fields()])
def test_every_field_has_help_and_a_flag_showing_its_default(flat, f):
    assert f.metadata.get("help", "").strip() and "\n" not in f.metadata["help"]
    flag = "--" + flat.replace("_", "-")
    assert config_flags()[flag] == flat
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    text = " ".join(train.format_help().split())  # argparse wraps lines: compare words
    entry = re.search(rf"(?:^| ){re.escape(flag)} \S+ (.*?)(?= --[a-z]|$)", text).group(1)
    d = f.default
    shown = f.metadata.get("default_text") or (",".join(map(str, d)) if isinstance(d, tuple)
                                               else f"{d:g}" if isinstance(d, float) else str(d))
    assert f"(default: {shown})" in entry, (flag, entry)
    for choice in f.metadata.get("choices", ()):
        assert choice in entry


def test_train_flags_are_the_config_fields_plus_the_old_names():
    flags = set(config_flags())
    assert len(flags) == sum(len(dataclasses.fields(c)) for c in config.SECTIONS.values())
    assert set(OLD_TRAIN_FLAGS) - {"--preset"} <= flags
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    given = {s for a in train._actions for s in a.option_strings}
    assert set(OLD_TRAIN_FLAGS) <= given
    assert "(default: sdns)" in " ".join(train.format_help().split())
