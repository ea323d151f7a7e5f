"""Resolve the device and number format once, from "auto" or an explicit choice."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from .config import cli_flag


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" picks CUDA, then Apple's MPS, then the CPU; an explicit choice must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available here; use device='auto' or 'cpu'")
    if name == "mps" and not _mps_available():
        raise ValueError("device='mps' but Apple's MPS is not available here; use device='auto' or 'cpu'")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={name!r} is not valid; choose one of: auto, cpu, cuda, mps")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 dot products (AVX512-BF16 or AMX), where bf16 roughly doubles conv speed."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def trains_on_cpu(device: torch.device | str) -> bool:
    """True where training on `device` ("auto" resolved) runs on the CPU; False elsewhere, and for a device that is
    not available (training's own check reports that)."""
    try:
        device = resolve_device(device) if isinstance(device, str) else device
    except ValueError:
        return False
    return device.type == "cpu"


def _cpu_without_bf16(device: torch.device | str) -> bool:
    """True where training would run on a CPU with no native bf16."""
    return trains_on_cpu(device) and not cpu_has_fast_bf16()


def bf16_slowdown(precision: str, device: torch.device | str) -> str:
    """Why `precision` will train slowly on `device`: bf16 asked for on a CPU that only emulates it. Empty otherwise."""
    if precision != "bf16" or not _cpu_without_bf16(device):
        return ""
    # Measured on an AVX2-only CPU: 41 against about 450-510 images/s for classroom's training step.
    return (
        "this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 runs about 10x slower than fp32 here; "
        "use precision 'auto' or 'fp32'"
    )


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype to train with, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        if why := bf16_slowdown(precision, device):
            warnings.warn(why, RuntimeWarning, stacklevel=2)
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Mixed-precision context for `device`, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


_ONE_THREAD = threading.Lock()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a small piece of CPU work (one picture's prediction or explanation) on one thread, one at a time.
    torch's thread count is the whole process's, so the callers take turns and the count is put back after each;
    one image is too little work to share, and beside a training job a second thread mostly waits: an explanation
    measured 40 ms on one thread and 2.8 s on two."""
    with _ONE_THREAD:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def set_threads(threads: int) -> int:
    """Use `threads` CPU threads (0 = every core the process may use; more than that are lowered to it, see
    effective_threads); returns the number in effect."""
    threads, _ = effective_threads(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def effective_threads(requested: int, cores: int | None = None) -> tuple[int, str]:
    """The thread count to use for `requested` (0 = every core) and a note for the user when it was lowered ("" when
    not). `cores` defaults to usable_cores(). Above the cores, threads only take turns: `--threads 8` on 2 cores
    measured 615 s against 10 s for the classroom preset on synthetic data, and 1024 threads never finished a step."""
    cores = usable_cores() if cores is None else cores
    if requested <= 0:
        return cores, ""
    if requested <= cores:
        return requested, ""
    whose = "this machine has" if cores >= (os.cpu_count() or cores) else "this process may use"
    return cores, (
        f"{cli_flag('threads')} {requested} lowered to {cores}, the cores {whose}; "
        "more threads only wait for each other"
    )


def usable_cores(root: Path = Path("/")) -> int:
    """The cores this process may run on: its CPU affinity, lowered by a cgroup CPU quota (containers' --cpus).

    `root` is where /proc and /sys are found (tests pass a fake tree)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cpu_quota(root)
    return max(1, min(cores, quota)) if quota is not None else max(1, cores)


def _cpu_quota(root: Path) -> int | None:
    """The tightest cgroup CPU quota over this process's cgroup and its ancestors, in whole cores rounded up (as the
    JVM and Go do: a fraction of a core is still worth a thread); None when there is none."""
    quotas = []
    for folder in cgroup_dirs(root):
        v2 = _read_words(folder / "cpu.max")  # "max 100000" or "<quota> <period>", microseconds
        v1 = _read_words(folder / "cpu.cfs_quota_us") + _read_words(folder / "cpu.cfs_period_us")  # -1 = none
        for words in (v2, v1):
            if len(words) == 2 and words[0].isdigit() and words[1].isdigit() and int(words[1]) > 0:
                quotas.append(math.ceil(int(words[0]) / int(words[1])))
    return min(quotas) if quotas else None


def cgroup_dirs(root: Path = Path("/")) -> list[Path]:
    """This process's cgroup folders (v2, and each v1 controller's) and their ancestors, innermost first: a limit
    set on any of them applies. Empty where there are no cgroups (not Linux)."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    mount = root / "sys/fs/cgroup"
    folders: list[Path] = []
    for line in lines:  # "0::/path" (v2) or "4:memory:/path" (v1); the path is inside the controller's mount
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[1].startswith("name="):
            continue
        base = mount / parts[1] if parts[1] else mount
        folder = base / parts[2].lstrip("/")
        while folder != base and base in folder.parents:
            folders.append(folder)
            folder = folder.parent
        folders.append(base)
    return folders


def _read_words(file: Path) -> list[str]:
    try:
        return file.read_text().split()
    except OSError:  # absent where that controller or version is not in use
        return []


# glibc's mallopt parameters (malloc.h) and their defaults.
_M_TRIM_THRESHOLD, _TRIM_DEFAULT = -1, 128 * 1024
_M_MMAP_MAX, _MMAP_MAX_DEFAULT = -4, 65536
_TRIM_NEVER = 2**31 - 1  # the largest value mallopt accepts
_kept_lock = threading.Lock()
_kept_users = 0


@functools.cache  # looking the library up runs ldconfig; once per process is enough
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
        return libc
    except (OSError, AttributeError):  # not glibc (musl)
        return None


@contextlib.contextmanager
def freed_memory_kept(enabled: bool = True) -> Iterator[bool]:
    """While inside, glibc's malloc keeps freed memory for reuse instead of handing it back to the kernel.

    By default every tensor over 32 MB is a fresh mmap whose pages the kernel zero-fills again on first touch,
    and a training step at batch 512 allocates several. Serving them from a heap that is not trimmed measured
    12-18 % more images/s on a 2-core CPU, for about 200 MB more memory while training. On the way out the
    defaults come back and the kept memory is returned. Nests across threads; yields False where the C library
    is not glibc (macOS, Windows, musl), and changes nothing there or when `enabled` is False.
    """
    global _kept_users
    libc = _libc() if enabled else None
    if libc is None:
        yield False
        return
    with _kept_lock:
        _kept_users += 1
        if _kept_users == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER)
    try:
        yield True
    finally:
        with _kept_lock:
            _kept_users -= 1
            if _kept_users == 0:
                libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_DEFAULT)
                libc.malloc_trim(0)


def slow_cpu_note(device_name: str = "auto") -> str:
    """Sentences for whoever picks what to train, where "auto" trains in fp32 on a CPU with no native bf16 (most
    laptop CPUs without AVX-512): the recipes behind the presets were tuned where bf16 is native. Empty where it is."""
    if not _cpu_without_bf16(device_name):
        return ""
    # Measured with `bench` and `train` on 2-core AVX2 (Zen 3) and AVX512-BF16 (Zen 4) VMs (docs/benchmarks.md).
    return (
        "This computer's CPU has no native bf16 (AVX512-BF16 or AMX), so training here runs in fp32, about 3x "
        "slower. The classroom and best presets still keep to their minutes: they train a narrower or shorter run "
        "here (two minutes bought about 83.5 % instead of 86 % on a 2-core CPU of this kind). A run with its epochs "
        "set takes about three times as long as on a CPU with bf16."
    )


def describe(device: torch.device, dtype: torch.dtype | None) -> str:
    """A short human label such as "cpu (bf16)" or "cuda:NVIDIA H200 (bf16)"."""
    label = device.type
    if device.type == "cuda":
        label = f"cuda:{torch.cuda.get_device_name(device)}"
    names = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return f"{label} ({names.get(dtype, str(dtype))})"
