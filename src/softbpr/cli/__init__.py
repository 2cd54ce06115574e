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

Every failure that is the user's input or environment ends in ONE line on stderr,
`softbpr: error: <what>, <where: file[:line] or key>; <what to do>`, and an exit status that says
its class (EXIT_CODES, also in `softbpr --help`); only a bug in softbpr prints a traceback.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
import traceback
from contextlib import contextmanager

from .._version import __version__
from . import data, study, train, use

EXIT_UNKNOWN_USERS = 1  # `recommend`: some users unknown and no --fallback (cli/use.py)
EXIT_USAGE = 2  # a bad flag, argument, config key or value (argparse's own status)
EXIT_DIVERGED = 3  # training stopped on a non-finite loss
EXIT_DATA = 4  # a data file, checkpoint or run directory that cannot be read or used
EXIT_FILE = 5  # a path: missing, not readable/writable, or existing and not to be overwritten
EXIT_ENV = 6  # the environment: an optional package not installed, out of memory
EXIT_BUG = 70  # EX_SOFTWARE in sysexits.h: a traceback, then a request to report it
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)

EXIT_CODES = {
    0: "success",
    EXIT_UNKNOWN_USERS: "recommend: some users are unknown and no --fallback was given",
    EXIT_USAGE: "bad flag, argument, config key or value",
    EXIT_DIVERGED: "training diverged (non-finite loss)",
    EXIT_DATA: "unusable input: a data file, checkpoint or run directory",
    EXIT_FILE: "a path is missing, not readable/writable, or exists (see --overwrite)",
    EXIT_ENV: "environment: missing optional package, out of memory",
    EXIT_BUG: "a bug in softbpr (a traceback is printed; please report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a training run says how to resume",
    EXIT_TERMINATED: "terminated (SIGTERM); a training run says how to resume",
}

EPILOG = "exit status:\n" + "\n".join(f"  {k:3d}  {v}" for k, v in EXIT_CODES.items())

class UsageError(Exception):
    """A command line argparse refused (unknown flag, bad int, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach main's error boundary (one line, exit 2) instead of
    printing the usage block and calling sys.exit; subcommand parsers inherit it."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_known_args(self, args=None, namespace=None):
        # remember the innermost (sub)command: argparse copies a subparser's namespace into
        # its parent's after this parser's own line, so the deepest `prog` is the one left
        namespace = argparse.Namespace() if namespace is None else namespace
        namespace.command_prog = self.prog
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown flag points to the help of the command it was given
        to ('softbpr train --help'), not to the top-level one."""
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} "
                             f"(see '{ns.command_prog} --help')")
        return ns


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="softbpr", description="Train and evaluate graph recommenders with hard "
                "negative sampling and the soft BPR loss.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"softbpr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, use, data, study):
        module.add_parsers(sub)  # each sets `run` (the command's function) as a default
    return p


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread so that the command unwinds as on Ctrl-C."""

    def __init__(self):
        super().__init__(EXIT_TERMINATED)


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
        except Terminated:
            print("softbpr: terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        except Exception as e:  # noqa: BLE001 - the one boundary; SystemExit (--help) passes
            return _report(e)


def _report(e: Exception) -> int:
    """The one error boundary: a line for the user's errors, a traceback for ours."""
    code, text = describe(e)
    if code != EXIT_BUG:
        _error_line(text)
        return code
    traceback.print_exc()
    print(f"softbpr: error: unexpected {type(e).__name__}: this is a bug in softbpr "
          f"{__version__}; please report it with the traceback above", file=sys.stderr)
    return EXIT_BUG


def describe(e: BaseException) -> tuple[int, str]:
    """(exit status, message) of an exception reaching the boundary; EXIT_BUG for ours."""
    from ..config import ConfigError
    from ..data import DataError

    trainer = sys.modules.get("softbpr.trainer")  # (not imported: no run, no divergence)
    if isinstance(e, (UsageError, ConfigError)):
        return EXIT_USAGE, str(e)
    if trainer is not None and isinstance(e, trainer.TrainingDiverged):
        return EXIT_DIVERGED, f"training diverged: {e}"
    if isinstance(e, DataError):
        return EXIT_DATA, str(e)
    if isinstance(e, OSError):
        return EXIT_FILE, os_error_text(e)
    if isinstance(e, ModuleNotFoundError) and not _our_import(e):
        return EXIT_ENV, str(e)
    memory = sys.modules.get("softbpr.memory")
    if memory is not None and isinstance(e, memory.NotEnoughMemory):  # checked before the work
        return EXIT_ENV, str(e)
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":  # torch's (CUDA)
        return EXIT_ENV, (f"out of memory ({str(e).splitlines()[0] if str(e) else 'host'}); "
                          "use a smaller --batch-size or data, or a machine with more memory")
    if isinstance(e, (ValueError, KeyError)) and not _our_import(e):
        return EXIT_USAGE, str(e.args[0] if isinstance(e, KeyError) and e.args else e)
    return EXIT_BUG, ""


_ADVICE = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EISDIR: "give a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "choose another path or pass --overwrite",
    errno.EROFS: "the file system is read-only: choose another place",
    errno.ENOSPC: "the disk is full: free space or choose another place",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_text(e: OSError) -> str:
    """'permission denied, data/train.txt; check its permissions ...' for an OSError with a
    file name; the message itself for our own OSErrors (already written for the user)."""
    if e.filename is None or e.strerror is None:
        return str(e)
    where = str(e.filename) + (f" -> {e.filename2}" if e.filename2 else "")
    advice = _ADVICE.get(e.errno)
    return f"{e.strerror[:1].lower()}{e.strerror[1:]}, {where}" + (f"; {advice}" if advice else "")


def _our_import(e: Exception) -> bool:
    """A ModuleNotFoundError for softbpr's own modules is a bug, not a missing extra."""
    return isinstance(e, ModuleNotFoundError) and (e.name or "").startswith("softbpr")


def _error_line(msg) -> None:
    text = "; ".join(s.strip() for s in str(msg).splitlines() if s.strip())
    print(f"softbpr: error: {text}", file=sys.stderr)


@contextmanager
def _sigterm_unwinds():
    """SIGTERM -> `Terminated` (a SystemExit(143)) for the duration of a command, so that it
    unwinds as on Ctrl-C (finally blocks run: temp files are removed, a training run keeps its
    last state.pt); the previous handler is restored after. Signals only reach the main
    thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["EXIT_CODES", "Terminated", "build_parser", "describe", "main"]
