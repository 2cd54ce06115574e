"""Config: unknown keys and bad values fail with a message naming them; precedence rules."""

import pytest

from softbpr.config import ConfigError, load, with_updates


def test_defaults_and_presets():
    e = load()
    assert e.method == "sdns" and e.loss.alpha == 0.9 and e.sampler.pool_size == 16
    assert load(overrides={"preset": "rns"}).sampler.name == "uniform"
    d = load(overrides={"preset": "dns"})
    assert d.loss.name == "bpr" and d.loss.alpha == 0.0 and d.method == "dns"


def test_unknown_keys_name_the_key(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[train]\nlrr = 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.lrr.*did you mean 'lr'"):
        load(p)
    p.write_text("pool_sise = 3\n")
    with pytest.raises(ConfigError, match=r"'pool_sise'.*'pool_size'"):
        load(p)
    p.write_text("preset = 'sdnss'\n")
    with pytest.raises(ConfigError, match=rf"{p}: unknown preset 'sdnss'"):
        load(p)
    with pytest.raises(ConfigError, match=r"^command line: unknown preset 'sdnss'"):
        load(overrides={"preset": "sdnss"}, overrides_from="command line")  # the CLI's words


def test_a_bad_value_names_the_file_or_the_overrides(tmp_path):
    """A value that fails its check names where it came from (it used to name only the key)."""
    p = tmp_path / "c.toml"
    p.write_text("[train]\nreg = -1.0\n")
    with pytest.raises(ConfigError, match=rf"^{p}: train\.reg must be >= 0, got -1\.0$"):
        load(p)
    with pytest.raises(ConfigError, match=r"^overrides: train\.reg must be >= 0, got -2\.0$"):
        load(overrides={"reg": -2.0})
    p.write_text("[train]\nreg = 0.1\n")
    with pytest.raises(ConfigError, match=r"^command line: train\.reg must be >= 0, got -2\.0$"):
        load(p, {"reg": -2.0}, "command line")
    # the file's second bad value, reached once a flag fixed the first: both named
    p.write_text("[model]\nmess_dropout = 0.1\n[train]\nlr = -1.0\n")
    with pytest.raises(ConfigError, match=rf"^{p} with command line: train\.lr must be > 0"):
        load(p, {"model": "ngcf"}, "command line")
    p.write_text("[train]\nlr = -1.0\n")
    with pytest.raises(ConfigError, match=rf"^{p}: train\.lr must be > 0"):
        load(p, {"model": "ngcf"}, "command line")


def test_flags_override_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("preset = 'dns'\n[train]\nlr = 0.005\nepochs = 3\n[sampler]\npool_size = 32\n")
    e = load(p, {"lr": 0.01, "pool_size": None})
    assert e.train.lr == 0.01 and e.train.epochs == 3 and e.sampler.pool_size == 32
    assert e.method == "dns"
    e2 = load(p, {"preset": "sdns", "alpha": 0.8})
    assert e2.method == "sdns" and e2.loss.alpha == 0.8


@pytest.mark.parametrize("over,msg", [
    ({"alpha": 1.0}, "alpha must be in"), ({"alpha": -0.1}, "alpha must be in"),
    ({"pool_size": 0}, "pool_size"), ({"preset": "dns", "alpha": 0.5}, "no effect"),
    ({"lr": "fast"}, "train.lr must be float"), ({"topk": "20,x"}, "topk"),
    ({"metric": "ndcg@10"}, "metric"), ({"model": "gcn"}, "model.name"),
    ({"split": "time"}, "data.split"),
    ({"metric": "ndcg@050"}, "metric"), ({"metric": "ndcg@\u0665\u0660"}, "metric"),
    ({"seed": -1}, r"train.seed must be in \[0, 9223372036854775808\)"),
    ({"seed": 2**63}, "train.seed must be in"), ({"data_seed": -1}, "data.seed must be in"),
])
def test_bad_values(over, msg):
    with pytest.raises(ConfigError, match=msg):
        load(overrides=over)


def test_round_trip_and_updates():
    e = load(overrides={"preset": "sdns", "alpha": 0.7, "topk": "10,20", "metric": "recall@10"})
    from softbpr.config import Experiment
    assert Experiment.from_dict(e.to_dict()) == e
    d = with_updates(e, preset="dns")
    assert d.method == "dns" and d.loss.alpha == 0.0 and d.eval.topk == (10, 20)


# The flat names are a public interface (TOML keys, sweep grids, CLI flags): none may disappear.
OLD_FLAT = {
    "data": ("data", "data"), "format": ("data", "format"), "split": ("data", "split"),
    "columns": ("data", "columns"), "kcore": ("data", "kcore"),
    "valid_ratio": ("data", "valid_ratio"), "test_ratio": ("data", "test_ratio"),
    "data_seed": ("data", "seed"), "model": ("model", "name"), "dim": ("model", "dim"),
    "layers": ("model", "layers"), "init": ("model", "init"),
    "mess_dropout": ("model", "mess_dropout"), "node_dropout": ("model", "node_dropout"),
    "ngcf_variant": ("model", "ngcf_variant"), "sampler": ("sampler", "name"),
    "pool_size": ("sampler", "pool_size"), "temperature": ("sampler", "temperature"),
    "gen_dim": ("sampler", "gen_dim"), "gen_lr": ("sampler", "gen_lr"),
    "gen_samples": ("sampler", "gen_samples"), "gen_epochs": ("sampler", "gen_epochs"),
    "gen_pretrain_epochs": ("sampler", "gen_pretrain_epochs"), "loss": ("loss", "name"),
    "alpha": ("loss", "alpha"), "eps": ("loss", "eps"), "adv_weight": ("loss", "adv_weight"),
    "lr": ("train", "lr"), "reg": ("train", "reg"), "batch_size": ("train", "batch_size"),
    "epochs": ("train", "epochs"), "eval_every": ("train", "eval_every"),
    "patience": ("train", "patience"), "checkpoint_every": ("train", "checkpoint_every"),
    "seed": ("train", "seed"), "device": ("train", "device"),
    "max_batches": ("train", "max_batches"), "time_limit": ("train", "time_limit"),
    "topk": ("eval", "topk"), "metric": ("eval", "metric"), "batch_users": ("eval", "batch_users"),
}


def test_flat_names_are_derived_and_complete():
    from dataclasses import fields

    from softbpr.config import FLAT, SECTIONS

    assert OLD_FLAT.items() <= FLAT.items()
    assert sorted(FLAT.values()) == sorted((s, f.name) for s, c in SECTIONS.items()
                                           for f in fields(c))
    assert load(overrides={"data_seed": 7, "seed": 8}).data.seed == 7


@pytest.mark.parametrize("section,key,bad,msg", [
    ("train", "time_limit", -1, r"train\.time_limit must be >= 0, got -1"),
    ("train", "lr", 0, r"train\.lr must be > 0"),
    ("data", "valid_ratio", 1.0, r"data\.valid_ratio must be in \[0, 1\)"),
    ("sampler", "temperature", 0.0, r"sampler\.temperature must be > 0"),
    ("model", "init", "zeros", r"model\.init = 'zeros' is not one of: xavier, normal"),
    ("eval", "topk", (0, 20), r"eval\.topk must be >= 1"),
    ("sampler", "gen_epochs", 1.5, r"sampler\.gen_epochs must be int, got 1\.5"),
    ("train", "epochs", True, r"train\.epochs must be int"),  # bool is no count
])
def test_bounds_and_types_come_from_the_field(section, key, bad, msg):
    from softbpr.config import SECTIONS

    with pytest.raises(ConfigError, match=msg):  # from Python ...
        SECTIONS[section](**{key: bad})
    with pytest.raises(ConfigError, match=msg):  # ... and from a file or flag alike
        load(overrides={section: {key: bad}})


def test_python_api_gets_real_types():
    from softbpr.config import EvalConfig, LossConfig, TrainConfig

    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)
    assert EvalConfig(topk=[10, "20"], metric="recall@10").topk == (10, 20)
    assert LossConfig(alpha=None).alpha == 0.9 and LossConfig(name="bpr").alpha == 0.0


def test_alpha_default_is_stated_once():
    from softbpr.config import DEFAULT_ALPHA, field_of

    assert load().loss.alpha == DEFAULT_ALPHA
    assert load(overrides={"loss": "mixed_bpr"}).loss.alpha == DEFAULT_ALPHA
    assert str(DEFAULT_ALPHA) in field_of("alpha").metadata["default_text"]


def test_labels():
    from softbpr.config import label

    assert (label("pool_size"), label("alpha"), label("reg"), label("temperature")) == \
        ("H", "α", "λ", "T")
    assert label("batch_size") == "batch_size" and label("preset") == "preset"


def test_config_file_with_a_byte_order_mark(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes("\ufeff[train]\nlr = 0.005\n".encode())  # Windows editors save UTF-8 so
    assert load(p).train.lr == 0.005


@pytest.mark.parametrize("device", ["tpu", "cuda:x", " cpu", ""])
def test_bad_device_names_the_key_not_a_flag(tmp_path, device):
    """A bad device from a file, --set or Python is train.device, not '(--device)'."""
    p = tmp_path / "c.toml"
    p.write_text(f"[train]\ndevice = {device!r}\n")
    for kw in ({"path": p}, {"overrides": {"device": device}}):
        with pytest.raises(ConfigError, match=rf"train\.device = '{device}' is not a device") \
                as e:
            load(**kw)
        assert "--device" not in str(e.value)
    for good in ("auto", "cpu", "cuda", "cuda:1"):
        assert load(overrides={"device": good}).train.device == good
