"""Telling a run the kernel's OOM killer ended from any other death: cgroup OOM-kill counts and peak memory."""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

CGROUP = Path("/sys/fs/cgroup")  # this container's cgroup (v2 here, v1 under memory/); a test points it elsewhere
MEMINFO = Path("/proc/meminfo")
NEAR_LIMIT = 0.9  # a last recorded peak this close to the limit means the next allocations likely crossed it
NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def oom_kills(root: Path | None = None) -> int | None:
    """How many processes the kernel has killed for memory in this cgroup; None where the count is not shown."""
    root = root or CGROUP
    for path in (root / "memory.events", root / "memory" / "memory.oom_control"):  # cgroup v2, then v1
        count = _field(path, "oom_kill")
        if count is not None:
            return count
    return None


def memory_limit(root: Path | None = None) -> int | None:
    """Bytes this cgroup may use before the OOM killer acts: its limit, else the machine's memory; None if unknown."""
    root = root or CGROUP
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            limit = int(path.read_text().strip())  # "max" (v2, no limit) is not a number
        except (OSError, ValueError):
            continue
        if limit < NO_LIMIT:
            return limit
    total_kb = _field(MEMINFO, "MemTotal:")
    return total_kb * 1024 if total_kb is not None else None


def peak_rss() -> int | None:
    """Bytes: this process's resident memory high-water mark; None where the OS does not say."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux kibibytes


def out_of_memory_message(kills_at_start: int | None, last_peak: int | None) -> str:
    """Why a run whose process vanished on this machine died of memory, with the fix; "" when nothing says so.

    The OOM-kill count is per cgroup, so a kill of another process in it while the run trained counts too.
    """
    kills, limit = oom_kills(), memory_limit()
    grew = kills is not None and kills_at_start is not None and kills > kills_at_start
    near = last_peak is not None and limit is not None and last_peak >= NEAR_LIMIT * limit
    at = limit if limit is not None else last_peak
    if not (grew or near) or at is None:
        return ""
    return (
        f"ran out of memory (the kernel stopped it at about {at / 1e9:.1f} GB); lower --batch-size or --width "
        "and start a new run"
    )


def _field(path: Path, key: str) -> int | None:
    """The number after `key` on its line of a "key value" file such as memory.events or /proc/meminfo."""
    try:
        match = re.search(rf"^{re.escape(key)}\s+(\d+)", path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None
