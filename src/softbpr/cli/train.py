"""`softbpr train`: its config flags are generated from the config fields (config.py is their
one source: name, type, default, help, choices), grouped by section."""

from __future__ import annotations

import os
import sys
import typing
from dataclasses import fields
from pathlib import Path

from ..config import FLAT, PRESETS, SECTIONS, ConfigError, Experiment, load

EPILOG = """\
Flags override the --config file, which overrides the defaults; --preset picks a sampler + loss
pair that --sampler / --loss then override."""

_FLAG_OF = {v: k for k, v in FLAT.items()}  # (section, field) -> flat name


def config_flags() -> dict[str, str]:
    """'--pool-size' -> 'pool_size' for every config field, in section order."""
    return {"--" + _FLAG_OF[(s, f.name)].replace("_", "-"): _FLAG_OF[(s, f.name)]
            for s, cls in SECTIONS.items() for f in fields(cls)}


def add_parsers(sub) -> None:
    import argparse

    t = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train a model; write a run directory.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", metavar="FILE", help="TOML experiment file")
    t.add_argument("--preset", metavar="NAME", help=f"a sampler + loss pair: {' | '.join(PRESETS)} "
                                    f"(default: {Experiment().method})")
    t.add_argument("--out", help="run directory (default runs/<data>-<model>-<method>-s<seed>-"
                                 "<time>)")
    t.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its "
                   "state.pt, with its own config.json (no other config flags)")
    t.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    for section, cls in SECTIONS.items():
        group = t.add_argument_group(f"[{section}]", cls.__doc__)
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            flat = _FLAG_OF[(section, f.name)]
            typ = _flag_type(hints[f.name])
            group.add_argument("--" + flat.replace("_", "-"), dest=flat, default=None, type=typ,
                               metavar=_metavar(f, typ), help=_help(f).replace("%", "%%"))
    t.set_defaults(run=run)


def _flag_type(hint) -> type:
    """int / float / str for argparse; tuples stay text ("20,50"), parsed by the config."""
    if typing.get_origin(hint) is tuple:
        return str
    scalars = [a for a in (typing.get_args(hint) or (hint,)) if a in (int, float, str)]
    return scalars[0] if scalars else str


def _metavar(f, typ: type) -> str:
    if "choices" in f.metadata:
        return "NAME"
    if isinstance(f.default, tuple):
        return "K,K"
    return {int: "N", float: "X"}.get(typ, "TEXT")


def _help(f) -> str:
    m = f.metadata
    choices = " | ".join(m["choices"]) + ": " if "choices" in m else ""
    default = m.get("default_text") or _show(f.default)
    return f"{choices}{m['help']} (default: {default})"


def _show(v) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_overrides(args) -> dict:
    """The config flags given on the command line as flat names (None = not given), with
    --preset: what `config.load` applies over the --config file."""
    return {k: getattr(args, k) for k in [*FLAT, "preset"]}


def run(args) -> int:
    from .._version import __version__
    from ..distributed import teardown
    from ..rundir import RunDir, default_name
    from ..seeding import busy_cpu_note
    from ..trainer import fit

    flat = config_overrides(args)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 checks --out
    if args.resume:
        given = [k for k, v in flat.items() if v is not None] + (["config"] if args.config else [])
        if given:
            raise ConfigError(f"--resume continues a run with its own config.json; drop "
                              f"{', '.join('--' + g.replace('_', '-') for g in given)}")
        out = RunDir(args.resume)
        if not out.is_run():
            raise FileNotFoundError(f"{out.config_path}: not a run directory")
        if out.is_finished():
            raise FileExistsError(f"{out} already finished ({out.result_path.name} exists)")
        exp = out.experiment()
    else:
        exp = load(args.config, flat)
        out = RunDir(args.out or Path("runs") / default_name(exp))
        if main_rank and args.out:
            out.check_new(overwrite=args.overwrite)
    quiet = args.quiet or not main_rank
    if main_rank:
        print(f"softbpr {__version__}: {exp.model.name} + {exp.method} on {exp.data.data} -> "
              f"{out}", flush=True)
        if (note := busy_cpu_note()) is not None:  # stdout: stderr is for errors only
            print(note, flush=True)
    try:
        result = fit(exp, out_dir=out.path, log=(lambda s: None) if quiet else
                  (lambda s: print(s, flush=True)),
                  progress=not quiet and sys.stderr.isatty(), resume=bool(args.resume))
    finally:
        teardown()
    k = max(exp.eval.topk)
    if main_rank:
        t = result.test
        print(f"test recall@{k} {t[f'recall@{k}']:.4f}  ndcg@{k} {t[f'ndcg@{k}']:.4f}  (best "
              f"epoch {result.best_epoch}, {result.seconds:.0f}s) -> {out}")
    return 0

