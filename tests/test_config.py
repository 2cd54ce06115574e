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
    with pytest.raises(ConfigError, match="unknown preset 'sdnss'"):
        load(p)


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
