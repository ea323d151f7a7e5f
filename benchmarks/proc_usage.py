"""CPU time per thread and memory of a process from /proc (Linux), for benchmarks/class_load.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in clock ticks


def _cpu_s(stat_file: Path) -> float:
    """utime + stime of a /proc stat file, in seconds; 0 for a thread or process that has gone."""
    try:
        text = stat_file.read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) * TICK_S  # fields 14 and 15 of proc(5), counted after the name


@dataclass(frozen=True)
class CpuSample:
    """A process's CPU seconds at one moment: in all (threads that have ended included) and per live thread."""

    total_s: float
    threads: dict[int, float]  # thread id -> CPU seconds


def sample(pid: int) -> CpuSample:
    """The process's CPU seconds now, reading the process before its threads (so a thread's share never exceeds
    the total's change)."""
    total = _cpu_s(Path(f"/proc/{pid}/stat"))
    task = Path(f"/proc/{pid}/task")
    threads = {int(t.name): _cpu_s(t / "stat") for t in task.iterdir()} if task.is_dir() else {}
    return CpuSample(total, threads)


def busy_threads(before: CpuSample, after: CpuSample, seconds: float, share: float = 0.1) -> frozenset[int]:
    """Threads that used more than `share` of a core between the samples (over `seconds` of wall time)."""
    return frozenset(t for t, s in after.threads.items() if s - before.threads.get(t, 0.0) > share * seconds)


def split(before: CpuSample, after: CpuSample, training: frozenset[int]) -> tuple[float, float]:
    """(CPU seconds of the `training` threads, CPU seconds of everything else) between the samples. Threads that
    started and ended in between count in the total only, so they land in "everything else"."""
    trained = sum(after.threads.get(t, before.threads.get(t, 0.0)) - before.threads.get(t, 0.0) for t in training)
    return trained, (after.total_s - before.total_s) - trained


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (the peak so far) in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # kB
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def processes_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds used so far by each of these processes that still runs."""
    found = {p: _cpu_s(Path(f"/proc/{p}/stat")) for p in pids}
    return {p: s for p, s in found.items() if s > 0}


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes alive at both moments used between them."""
    return sum(after[p] - s for p, s in before.items() if p in after)


def machine_cpu_s() -> float:
    """CPU seconds every process of the machine has used since boot, idle and waiting for disks excluded."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) * TICK_S


def available_mb() -> float:
    """MemAvailable: what new processes can take without swapping or evicting much, in MB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0
