"""Entry point of the ``nasnc`` console script."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from nasnc import NasncError, __version__
from nasnc._errors import ArchError, ConfigError

from ._base import Command, UsageError
from ._bench import BenchImport, BenchShow
from ._compare import Compare
from ._evaluate import Evaluate
from ._report import Report
from ._scores import Scores
from ._search import Search
from ._space import SpaceInfo, SpaceShow
from ._train import Train

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every command, in help order. Add new commands here.
COMMANDS: tuple[Command, ...] = (
    SpaceInfo(),
    SpaceShow(),
    Search(),
    Evaluate(),
    Train(),
    Scores(),
    BenchImport(),
    BenchShow(),
    Compare(),
    Report(),
)

_USAGE_ERRORS = (UsageError, ArchError, ConfigError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasnc",
        description="Search and rank NAS-Bench-201 architectures with neural capacitance.",
    )
    parser.add_argument("--version", action="version", version=f"nasnc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="debug logs and full tracebacks")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {}
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}
    for command in COMMANDS:
        words = tuple(command.name.split())
        for depth in range(1, len(words) + 1):
            prefix, path = words[: depth - 1], words[:depth]
            if path in parsers:
                continue
            if prefix not in groups:
                groups[prefix] = parsers[prefix].add_subparsers(
                    title="commands", metavar="COMMAND", dest=f"_cmd{depth}"
                )
                groups[prefix].required = True
            leaf = depth == len(words)
            sub = groups[prefix].add_parser(
                path[-1],
                help=command.help if leaf else f"{' '.join(path)} commands",
                description=command.help if leaf else None,
            )
            parsers[path] = sub
            if leaf:
                command.add_arguments(sub)
                sub.set_defaults(_command=command, _parser=sub)
    return parser


def _configure_logging(verbose: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


class _WatchedStdout:
    """The real stdout, remembering whether a write or flush hit a closed pipe.

    Only that case is a reader gone away (``nasnc compare | head``); a
    ``BrokenPipeError`` from anywhere else (a worker's pipe, a socket) is an
    error like any other.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self.closed_pipe = True
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.closed_pipe = True
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _silence_stdout(stream: TextIO) -> None:
    """Point a closed stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file descriptor (captured output): nothing will flush it
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 failure, 2 usage error,
    130 or 143 interrupted by SIGINT or SIGTERM, 141 the reader of stdout went away)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # say it with the command's own usage, not the top-level one
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(args.verbose, args.debug)
    command: Command = args._command
    watched = _WatchedStdout(sys.stdout)
    sys.stdout = watched
    try:
        return _run(command, args, watched)
    finally:
        if sys.stdout is watched:
            sys.stdout = watched.stream


def _run(command: Command, args: argparse.Namespace, stdout: _WatchedStdout) -> int:
    try:
        status = command.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except _USAGE_ERRORS as exc:
        if args.debug:
            raise
        print(f"nasnc {command.name}: error: {exc}", file=sys.stderr)
        return 2
    except NasncError as exc:
        if args.debug:
            raise
        print(f"nasnc {command.name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nasnc {command.name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and stdout.closed_pipe and not args.debug:
            _silence_stdout(stdout.stream)
            return 141  # 128 + SIGPIPE, what a shell reports for a killed writer
        if args.debug:
            raise
        print(
            f"nasnc {command.name}: internal error: {type(exc).__name__}: {exc} "
            f"(rerun as 'nasnc --debug {command.name} ...' for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
