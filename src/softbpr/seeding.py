"""Seeds and devices, always passed in explicitly (no global RNG use in the library)."""

from __future__ import annotations

import numpy as np
import torch


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' / 'cuda:N' fail clearly without a GPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {requested!r}: only {torch.cuda.device_count()} GPU(s) present")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {requested!r}: choose auto, cpu, cuda or cuda:N")
    return dev


def make_generators(seed: int, device: torch.device):
    """(numpy Generator, CPU torch Generator for init, device torch Generator for sampling)."""
    np_rng = np.random.default_rng(seed)
    init_gen = torch.Generator().manual_seed(seed)
    dev_gen = torch.Generator(device=device).manual_seed(seed + 1)
    return np_rng, init_gen, dev_gen
