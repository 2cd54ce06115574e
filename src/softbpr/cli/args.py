"""Argument types shared by the commands: argparse reports their errors as one line
(`softbpr: error: argument --topk: ...`, exit 2)."""

from __future__ import annotations

import argparse


def int_list(text: str, low: int = 1, what: str = "integers") -> tuple[int, ...]:
    """'20,50' -> (20, 50): comma-separated integers >= `low`."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or min(values) < low:
        raise argparse.ArgumentTypeError(f"must be comma-separated {what} >= {low}, e.g. 20,50; "
                                         f"got {text!r}")
    return values


def cutoffs(text: str) -> tuple[int, ...]:
    """--topk: cut-offs K >= 1."""
    return int_list(text, 1, "cut-offs")


def positive_int(text: str) -> int:
    """--k: one integer >= 1 (checked before any file is read)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, e.g. 10; got {text!r}")
    return value


def minutes(text: str) -> float:
    """--budget: a finite number of minutes >= 0 (0: no budget)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be minutes >= 0 (0: no budget), e.g. 90; "
                                         f"got {text!r}")
    return value


def seeds(text: str) -> list[int]:
    """--seeds: integers >= 0."""
    return list(int_list(text, 0, "seeds"))


def metrics(text: str) -> list[str]:
    """--metrics: recall@K / ndcg@K names, comma-separated."""
    import re

    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if not re.fullmatch(r"(recall|ndcg)@[1-9]\d*", m)]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"must be metrics like recall@50,ndcg@50; got "
                                         f"{', '.join(bad) or repr(text)}")
    return names
