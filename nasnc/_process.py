"""Helper processes that must not outlive the process that started them."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["watch_parent"]


def watch_parent(
    parent: int, on_gone: Callable[[], None], *, every_s: float = 1.0
) -> threading.Thread:
    """Call ``on_gone()`` once ``parent`` is no longer this process's parent.

    A parent killed by SIGKILL cannot stop its helpers, which would then run
    on as orphans. A daemon thread polls :func:`os.getppid` every ``every_s``
    seconds (the orphan is adopted by another process); ``on_gone`` runs in
    that thread: exit, or signal the main thread to stop at a safe point.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        on_gone()

    thread = threading.Thread(target=watch, name="nasnc-parent-watch", daemon=True)
    thread.start()
    return thread
