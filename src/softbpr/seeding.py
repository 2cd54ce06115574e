"""Seeds and devices, always passed in explicitly (no global RNG use in the library)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Generators(NamedTuple):
    """The three generators of a training run."""

    init: torch.Generator
    """initialisation, on the CPU, so CPU and GPU runs start alike"""
    shuffle: torch.Generator
    """epoch shuffling, seeded alike on every rank"""
    sample: torch.Generator
    """negative sampling, distinct per rank"""


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' / 'cuda:N' fail clearly without a GPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"device {requested!r} is not a device name (--device); choose auto, "
                         "cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {requested!r}: only {torch.cuda.device_count()} GPU(s) present")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {requested!r}: choose auto, cpu, cuda or cuda:N")
    return dev


def make_generators(seed: int, device: torch.device, rank: int = 0) -> Generators:
    """The training run's generators (see `Generators`), from the training seed."""
    init_gen = torch.Generator().manual_seed(seed)
    shuffle_gen = torch.Generator(device=device).manual_seed(seed + 1)
    sample_gen = torch.Generator(device=device).manual_seed(seed + 2 + 7919 * rank)
    return Generators(init_gen, shuffle_gen, sample_gen)


def busy_cpu_note() -> str | None:
    """A note when torch will use several threads on CPUs other processes keep busy: OpenMP
    threads then wait on each other, and an epoch measured here took 25x longer (2 threads, 2
    cores, one of them busy). None when there is nothing to say."""
    import os

    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    if threads < 2 or "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    if load < 0.75 * cores:
        return None
    return (f"softbpr: note: the CPUs are busy (load average {load:.1f} on {cores} cores) and "
            f"torch uses {threads} threads; if epochs are slow, set OMP_NUM_THREADS to the number "
            f"of free cores (e.g. OMP_NUM_THREADS=1)")
