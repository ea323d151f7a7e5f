"""Whether the process that wrote a record is still running: pid, start time and host, checked through /proc."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from pathlib import Path


def this_process() -> tuple[int, int | None, str]:
    """(pid, start time, host): enough to tell later whether this process still runs."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return pid, stat[1] if stat else None, socket.gethostname()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from Linux's /proc; None elsewhere or if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5), counted after "pid (comm)"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if os.name == "nt":  # os.kill(pid, 0) would kill on Windows
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def process_alive(
    pid: int | None, proc_start: int | None, host: str | None, updated: str, stale_after_s: float
) -> bool:
    """Whether a 'running' run's process may still be training it."""
    if host != socket.gethostname() or pid is None or os.name == "nt":  # os.kill(pid, 0) would kill on Windows
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(updated)).total_seconds()
        return age < stale_after_s
    try:
        os.kill(pid, 0)  # signal 0: only checks that the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _proc_stat(pid)
    if stat is None:  # no /proc (macOS): the pid exists, which is all we can tell; on Linux it just ended
        return not Path("/proc/self/stat").exists()
    state, start = stat
    return state not in "ZX" and (proc_start is None or start == proc_start)  # a new process may reuse the pid
