"""Every example experiment under configs/ loads and validates."""

from pathlib import Path

import pytest

from softbpr.config import load

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("lightgcn-*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_loads(path):
    exp = load(path)
    assert exp.method == path.stem.split("-", 1)[1]


def test_there_are_examples():
    assert len(CONFIGS) >= 4
