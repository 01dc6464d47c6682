"""Ctrl-C and SIGTERM end a search the same way: at a safe point, losing only the trial in flight.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, and an exception raised inside a finalizer or a weakref
callback is printed and dropped ("Exception ignored in ..."): the search then
carries on as if nothing happened. SIGTERM, what ``kill``, batch schedulers and
container runtimes send, ends the process without any cleanup at all.

:func:`stop_on_signals` installs one handler for both signals. It records the
signal and raises :class:`Interrupted` (a ``KeyboardInterrupt``, so Optuna
fails the running trial and re-raises it); :func:`raise_if_interrupted`, called
at every report point and after every trial, raises it again if the first one
was dropped. Later signals are recorded but raise nothing, so the cleanup that
an interruption starts (failing this process's running trials, stopping the
workers) is not itself interrupted.

Inside ``study.optimize`` a signal must not raise in Optuna's own bookkeeping
(asking for a trial, telling its result): an exception there can leave
Optuna's trial runner in a broken state (seen as an ``UnboundLocalError``
replacing the interruption). :func:`deferred` wraps the optimize call: a
signal there is only recorded; :func:`interruptible` wraps the objective's
body, where it raises at once (a pending one on entry), and the callback after
each trial raises a recorded one.

Optuna logs a trial that :class:`Interrupted` stopped as failed, with the
traceback; :func:`quiet_interrupts` keeps that line and drops the traceback
(the interruption is expected, and the summary says what was kept).
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = [
    "INTERRUPTED_REASON",
    "Interrupted",
    "deferred",
    "interruptible",
    "quiet_interrupts",
    "raise_if_interrupted",
    "stop_on_signals",
]

#: The signals a search stops on.
SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: ``fail_reason`` of a trial stopped by Ctrl-C or SIGTERM.
INTERRUPTED_REASON = "interrupted"

_received: int | None = None
_raise_at_once = True  # False inside deferred(), outside interruptible()


class Interrupted(KeyboardInterrupt):
    """The search was stopped by ``signum``; exit with :attr:`exit_status` (128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def _handle(signum: int, _frame: FrameType | None) -> None:
    global _received
    if _received is not None:  # already stopping: let the cleanup finish
        return
    _received = signum
    if _raise_at_once:
        raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal arrived (its first exception may be lost)."""
    if _received is not None:
        raise Interrupted(_received)


@contextmanager
def _raising(flag: bool) -> Iterator[None]:
    global _raise_at_once
    before = _raise_at_once
    _raise_at_once = flag
    try:
        yield
    finally:
        _raise_at_once = before


@contextmanager
def deferred() -> Iterator[None]:
    """Signals in this block are recorded, not raised (Optuna's bookkeeping runs here)."""
    with _raising(False):
        yield


@contextmanager
def interruptible() -> Iterator[None]:
    """Signals in this block raise at once; one recorded before it raises on entry."""
    with _raising(True):
        raise_if_interrupted()
        yield


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described in the module docstring, then restore the handlers.

    Signal handlers belong to the main thread: elsewhere this does nothing.
    """
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS}
    hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_quiet_unraisable, hook)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = hook
        _received = None


def _quiet_unraisable(hook: Callable[[Any], object], unraisable: Any) -> None:
    """An :class:`Interrupted` raised inside a finalizer (a database connection being
    collected, say) is dropped by Python with an "Exception ignored" traceback;
    :func:`raise_if_interrupted` raises it again at the next safe point, so the
    traceback is noise. Anything else goes to ``hook``."""
    if not isinstance(unraisable.exc_value, Interrupted):
        hook(unraisable)


class _NoInterruptTraceback(logging.Filter):
    """Drops the traceback of a record about an :class:`Interrupted` (keeps the line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], Interrupted):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_interrupts() -> None:
    """Make the handlers of Optuna's logger print an interrupted trial in one line.

    Optuna logs "Trial N failed ... because of the following error:
    Interrupted('SIGINT')" with the whole traceback; a stop the user asked
    for is not an error to debug. Idempotent; call it after Optuna's logging
    is set up (the handlers present then are filtered).
    """
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoInterruptTraceback) for f in handler.filters):
            handler.addFilter(_NoInterruptTraceback())
