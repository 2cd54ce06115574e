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
    from ..trainer import TrainingDiverged, fit
    from . import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated

    flat = config_overrides(args)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 checks --out
    if args.resume:
        given = [k for k, v in flat.items() if v is not None] + (["config"] if args.config else [])
        if given:
            raise ConfigError(f"--resume continues a run with its own config.json; drop "
                              f"{', '.join('--' + g.replace('_', '-') for g in given)}")
        out = RunDir(args.resume)
        if not out.is_run():
            raise FileNotFoundError(f"{out.config_path}: not a run directory (no config.json), "
                                    "--resume; give the folder of an earlier `softbpr train`")
        if out.is_finished():
            raise FileExistsError(f"{out} already finished ({out.result_path.name} exists), "
                                  "--resume; start a new run with another --out")
        exp = out.experiment()
    else:
        exp = load(args.config, flat, "command line")
        out = RunDir(args.out or Path("runs") / default_name(exp))
        if main_rank:  # before the data is loaded: a refusal costs nothing
            out.check_new(overwrite=args.overwrite)
    quiet = args.quiet or not main_rank
    if main_rank:
        print(f"softbpr {__version__}: {exp.model.name} + {exp.method} on {exp.data.data} -> "
              f"{out}", flush=True)
        if (note := busy_cpu_note()) is not None:  # stdout: stderr is for errors only
            print(note, flush=True)
        if not quiet and (note := loss_note(exp)) is not None:
            print(note, flush=True)
    finished: list[int] = []  # epochs finished in this session (for the interrupt line)
    try:
        result = fit(exp, out_dir=out.path, log=(lambda s: None) if quiet else
                     (lambda s: print(s, flush=True)),
                     progress=not quiet and sys.stderr.isatty(), resume=bool(args.resume),
                     overwrite=args.overwrite, on_epoch=lambda row: finished.append(row["epoch"]))
    except (KeyboardInterrupt, Terminated) as e:
        if main_rank:
            print(interrupted_line(out, finished, isinstance(e, Terminated)), file=sys.stderr,
                  flush=True)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except TrainingDiverged as e:  # name the run
        raise TrainingDiverged(f"{out}, {e}") from None
    finally:
        teardown()
    k = max(exp.eval.topk)
    if main_rank:
        t = result.test
        print(f"test recall@{k} {t[f'recall@{k}']:.4f}  ndcg@{k} {t[f'ndcg@{k}']:.4f}  (best "
              f"epoch {result.best_epoch}, {result.seconds:.0f}s) -> {out}")
    return 0


def interrupted_line(out, finished: list[int], terminated: bool = False) -> str:
    """The one line after Ctrl-C / SIGTERM: where the run stopped and the command that
    continues it (a run directory without state.pt starts afresh under --resume)."""
    import shlex

    what = "softbpr: terminated (SIGTERM)" if terminated else "softbpr: interrupted"
    if not out.is_run():
        return (f"{what} before training started; nothing was written to {out}: run the same "
                "command again")
    saved = saved_epoch(out)
    rows = out.read_history()  # a row per finished epoch, written before its state
    epoch = max(finished[-1] if finished else 0, rows[-1]["epoch"] if rows else 0,
                saved or 0) + 1
    resume = f"softbpr train --resume {shlex.quote(str(out))}"
    if saved is None:
        return (f"{what} in epoch {epoch} of {out}, before its first checkpoint; `{resume}` "
                "starts it again")
    return (f"{what} in epoch {epoch} of {out}; the state after epoch {saved} is saved: "
            f"continue with `{resume}`")


def saved_epoch(out) -> int | None:
    """The epoch of the run's state.pt, or None when there is none (or it is unreadable)."""
    if not out.has_state():
        return None
    try:
        return int(out.load_state()["epoch"])
    except Exception:  # noqa: BLE001 - only for a message: an unreadable state counts as none
        return None


def loss_note(exp) -> str | None:
    """Why soft BPR's loss stays near 0.6931 (ln 2) for several epochs: it is scaled by 1 - α."""
    alpha = getattr(exp.loss, "alpha", None) or 0.0
    if exp.loss.name not in ("soft_bpr", "mixed_bpr") or not alpha:
        return None
    return (f"note: {exp.loss.name} ranks by (1 - α)(ŷ_ui - ŷ_uj) with 1 - α = {1 - alpha:g}, so "
            "its loss starts at ln 2 = 0.6931 and falls slowly; judge progress by the validation "
            "metrics")
