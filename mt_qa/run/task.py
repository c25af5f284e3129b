"""Entry point of one local worker task: ``python -m mt_qa.run.task ARGV...``.

It is ``mtqa ARGV...`` that also dies with the ``mtqa run`` process that started it: the
kernel sends it SIGTERM when its parent exits, however the parent exits (SIGKILL included), so
no orphan keeps writing a step's shards beside the tasks of a rerun.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_ENV = "MTQA_PARENT_PID"


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def main() -> int:
    set_parent_death_signal()
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        return 143  # the parent died before the death signal was armed: do not start
    from mt_qa.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
