"""Command line: `main(argv) -> exit code`; no work at import time.

Commands (one module each; `softbpr COMMAND --help` for the flags):

    train                 train a model and write a run directory              (cli/train.py)
    evaluate RUN_DIR      recompute valid/test metrics from a run's checkpoint (cli/use.py)
    recommend RUN_DIR     top-K unseen items per user                          (cli/use.py)
    export RUN_DIR        final user/item embeddings with external ids         (cli/use.py)
    data list | fetch | prepare | synth | info   datasets                      (cli/data.py)
    sweep SWEEP.toml      a grid of runs, resumable, optionally in parallel    (cli/study.py)
    report RESULTS        Table 2 from a sweep's results                       (cli/study.py)
    plot PATH             figures from run directories                         (cli/study.py)
    tune SWEEP.toml       tune a sweep's grid with Optuna, pruning trials      (tune.py)

Exit status: 0 success; 1 `recommend` with unknown users and no fallback; 2 a bad argument,
config, data file or environment (one line `softbpr: error: ...` on stderr); 3 training
diverged; 70 a bug (a traceback, then a line asking for a report); 130 interrupted (Ctrl-C);
143 terminated (SIGTERM: the process unwinds as on Ctrl-C, so temp files are removed and a run
keeps its last state.pt).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from contextlib import contextmanager

from .._version import __version__
from . import data, study, train, use

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_BUG = 70  # EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130

USER_ERRORS = (ValueError, KeyError, OSError, ModuleNotFoundError)
"""Bad input or environment: ConfigError and DataError are ValueErrors; OSError covers missing
files, refused overwrites and permissions; ModuleNotFoundError an optional dependency that is
not installed (the message says which extra to install)."""


class UsageError(Exception):
    """A command line argparse refused (unknown flag, bad int, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach main's error boundary (one line, exit 2) instead of
    printing the usage block and calling sys.exit; subcommand parsers inherit it."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="softbpr", description="Train and evaluate graph recommenders with hard "
                "negative sampling and the soft BPR loss.")
    p.add_argument("--version", action="version", version=f"softbpr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, use, data, study):
        module.add_parsers(sub)  # each sets `run` (the command's function) as a default
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with _sigterm_unwinds():
        try:
            args = build_parser().parse_args(argv)
            args.argv = argv  # the command line as given (tune's workers repeat it)
            return args.run(args)
        except KeyboardInterrupt:
            print("softbpr: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as e:  # noqa: BLE001 -- the boundary; SystemExit (--help, SIGTERM) passes
            return _report(e)


def _report(e: Exception) -> int:
    """The one error boundary: a line for the user's errors, a traceback for ours."""
    if isinstance(e, UsageError) or (isinstance(e, USER_ERRORS) and not _our_import(e)):
        _error_line(e.args[0] if isinstance(e, KeyError) and e.args else e)
        return EXIT_USER_ERROR
    from ..trainer import TrainingDiverged

    if isinstance(e, TrainingDiverged):
        _error_line(f"training diverged: {e}")
        return EXIT_DIVERGED
    traceback.print_exc()
    print(f"softbpr: error: unexpected {type(e).__name__}: this is a bug in softbpr "
          f"{__version__}; please report it with the traceback above", file=sys.stderr)
    return EXIT_BUG


def _our_import(e: Exception) -> bool:
    """A ModuleNotFoundError for softbpr's own modules is a bug, not a missing extra."""
    return isinstance(e, ModuleNotFoundError) and (e.name or "").startswith("softbpr")


def _error_line(msg) -> None:
    text = "; ".join(s.strip() for s in str(msg).splitlines() if s.strip())
    print(f"softbpr: error: {text}", file=sys.stderr)


@contextmanager
def _sigterm_unwinds():
    """SIGTERM -> SystemExit(143) for the duration of a command, so that it unwinds as on
    Ctrl-C (finally blocks run: temp files are removed, a training run keeps its last
    state.pt); the previous handler is restored after. Signals only reach the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["build_parser", "main"]
