"""What a run needs from the machine: its peak memory, estimated before training and checked against what is free."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig, cli_flag
from .devices import cgroup_dirs, cpu_has_fast_bf16, effective_threads, resolve_device
from .models import build_model
from .train import WHITENING_SAMPLE

GB = 10**9
IMAGE_BYTES = 3 * 32 * 32  # one uint8 CIFAR image, as data.py holds it
LABEL_BYTES = 8  # int64
EVAL_BATCH = 500  # evaluate()'s batch size
# Fitted to the peaks measured in docs/memory.md. A step holds what the forward pass saved for backward plus the
# gradients backward makes as it frees it; evaluation (in batches of EVAL_BATCH) holds a few activations of the
# largest layer at once; a run of any size adds kernel libraries PyTorch maps at the first step (140 MB measured)
# and the threads' buffers.
ACTIVATION_FACTOR = 1.1
EVAL_ACTIVATIONS = 4
RUN_OVERHEAD = 200 * 10**6
# A run is refused when the estimate times this exceeds the free memory. Over 36 measured peaks (docs/memory.md) the
# estimate was 0.82-1.33 times the peak: 1.25 covers its worst underestimate (1 / 0.82 = 1.22) with a little left
# for the memory other programs take meanwhile.
SAFETY_MARGIN = 1.25
_WHITENING_BYTES_PER_IMAGE = IMAGE_BYTES + 4 * IMAGE_BYTES + 2 * 31 * 31 * 12 * 4  # gather, float, 2x (31*31, 12)
_INPUT_BYTES_PER_IMAGE = 3 * IMAGE_BYTES + 2 * 4 * IMAGE_BYTES  # augment's uint8 copies, float and channels_last


@dataclass(frozen=True)
class MemoryEstimate:
    """A run's peak memory in bytes, by cause. With CUDA, `device_bytes` is GPU memory and `host_bytes` the CPU's;
    elsewhere (MPS shares the CPU's memory) both are the total."""

    device: str  # "cpu", "cuda" or "mps"
    parameters: int  # of the model
    data: int  # the uint8 images and labels held in the CPU's memory
    weights: int  # weights, gradients, optimizer state, bf16 copies and the optimizer step's temporaries
    step: int  # the largest transient: fastnet's whitening, or a training step's activations plus an evaluation's
    epoch_copies: int  # the CPU copies of weights and optimizer state each epoch's event keeps (TrainResult.history)
    device_data: int = 0  # train.py's copy of the training set on a GPU
    overhead: int = RUN_OVERHEAD

    @property
    def total(self) -> int:
        return self.data + self.device_data + self.weights + self.step + self.epoch_copies + self.overhead

    @property
    def device_bytes(self) -> int:
        return self.device_data + self.weights + self.step if self.device == "cuda" else self.total

    @property
    def host_bytes(self) -> int:
        return self.data + self.epoch_copies + self.overhead if self.device == "cuda" else self.total


def estimate_memory(config: TrainConfig, n_train_images: int, n_test_images: int = 10_000) -> MemoryEstimate:
    """The peak memory a run of `config` on that many images takes, beyond the Python and PyTorch runtime itself
    (which a running process has already paid for). On a CPU it came within -18 %..+33 % of 36 measured
    peaks (docs/memory.md). The data is counted though the caller may hold it already: the check may come before."""
    device = resolve_device(config.device)
    half = _trains_in_half(config, device)
    per_image, largest, params, trainable = _model_profile(config, half)
    n_train, n_test = max(n_train_images, 0), max(n_test_images, 0)
    data = (n_train + n_test) * (IMAGE_BYTES + LABEL_BYTES)
    # train.py's .to(device) copies the training set (and alternate_flip's bit per image); on a CPU it is the same one.
    device_data = n_train * (IMAGE_BYTES + LABEL_BYTES + 1) if device.type != "cpu" else 0
    state_slots = _optimizer_slots(config)
    weights = 4 * params + 4 * trainable * (2 + state_slots) + (2 * params if half else 0)
    training = config.batch_size * (per_image * ACTIVATION_FACTOR + _INPUT_BYTES_PER_IMAGE)
    evaluation = EVAL_BATCH * (EVAL_ACTIVATIONS * largest + 3 * 4 * IMAGE_BYTES)  # + float copies of the batch
    whitening = min(n_train, WHITENING_SAMPLE) * _WHITENING_BYTES_PER_IMAGE if config.arch == "fastnet" else 0
    epoch_copies = config.epochs * 4 * (params + trainable * state_slots)
    # The evaluation after each epoch adds to what the steps leave: its larger blocks do not fit the holes the
    # steps' freed activations leave in the heap (measured: improved's peak grew by both).
    transient = max(whitening, training + evaluation)
    return MemoryEstimate(device.type, params, data, int(weights), int(transient), epoch_copies, device_data)


def _trains_in_half(config: TrainConfig, device: torch.device) -> bool:
    """Whether activations are 2-byte (bf16 / fp16 autocast), as resolve_precision decides, without its warning."""
    if config.precision != "auto":
        return config.precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())


def _optimizer_slots(config: TrainConfig) -> int:
    """Tensors of a parameter's size the optimizer keeps per parameter: Adam's two moments, momentum's buffer."""
    if config.opt in ("adam", "adamw"):
        return 2
    return 1 if config.momentum > 0 or config.opt == "muon" else 0


def _model_profile(config: TrainConfig, half: bool) -> tuple[int, int, int, int]:
    """(bytes saved for backward per training image, bytes of the largest single activation per image, parameters,
    trainable parameters), from forward passes of the real model on the meta device: shapes only, no memory."""
    key = dataclasses.replace(config, seed=0, batch_size=1, epochs=1, lowres_epochs=0, lr=1.0, device="cpu")
    return _profile(key, half)


@functools.lru_cache(maxsize=64)
def _profile(config: TrainConfig, half: bool) -> tuple[int, int, int, int]:
    dtype = torch.bfloat16 if half else torch.float32
    with torch.device("meta"):
        model = build_model(config).to(dtype=dtype)
    model.train()
    one, _ = _saved_bytes(model, 1, dtype)
    two, largest = _saved_bytes(model, 2, dtype)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return two - one, largest, params, trainable  # the difference leaves out what does not grow with the batch


def _saved_bytes(model: torch.nn.Module, batch: int, dtype: torch.dtype) -> tuple[int, int]:
    """(bytes of the distinct tensors autograd saves for backward, bytes per image of the largest of them)."""
    saved: dict[int, torch.Tensor] = {}  # by id, holding each tensor so that no id is reused meanwhile

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved[id(tensor)] = tensor
        return tensor

    x = torch.zeros(batch, 3, 32, 32, device="meta", dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        model(x)
    sizes = {key: t.numel() * t.element_size() for key, t in saved.items()}
    per_image = [sizes[key] // batch for key, t in saved.items() if t.dim() and t.shape[0] == batch]
    return sum(sizes.values()), max(per_image, default=0)


def available_memory(device: torch.device | str = "cpu", root: Path = Path("/")) -> int | None:
    """Bytes this process may still allocate on `device`; None where it cannot be told (then nothing is refused).

    On a CPU: the least of the kernel's MemAvailable and, for each cgroup limit over this process, the limit less
    what the cgroup uses apart from the file cache the kernel can drop. On CUDA: the GPU's free memory.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    known = [free for free in (_meminfo_available(root), *_cgroup_free(root)) if free is not None]
    return min(known) if known else None


def _meminfo_available(root: Path) -> int | None:
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_free(root: Path) -> list[int]:
    """Limit less use, for each cgroup (v2 memory.max / v1 memory.limit_in_bytes) over this process with a limit."""
    free = []
    for folder in cgroup_dirs(root):
        for limit_file, usage_file, cache_key in (
            ("memory.max", "memory.current", "inactive_file"),
            ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
        ):
            limit, usage = _read_int(folder / limit_file), _read_int(folder / usage_file)
            if limit is None or usage is None or limit >= 2**60:  # "max", or v1's "unlimited" (2^63 - a page)
                continue
            free.append(max(0, limit - usage + _stat_value(folder / "memory.stat", cache_key)))
    return free


def _read_int(file: Path) -> int | None:
    try:
        text = file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(file: Path, key: str) -> int:
    try:
        for line in file.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def check_memory(
    config: TrainConfig, n_train_images: int, available: int | None = None, *, n_test_images: int = 10_000
) -> MemoryEstimate:
    """The run's estimate; raises ValueError, before anything is trained, when it does not fit in `available` bytes
    (default: available_memory() on the run's device, and on a GPU the CPU's as well) with SAFETY_MARGIN to spare.

    The message names what is needed, what is free and the settings to lower, each with a value that fits.
    """
    estimate = estimate_memory(config, n_train_images, n_test_images)
    pools = [
        (
            estimate.device_bytes,
            available_memory(estimate.device) if available is None else available,
            "GPU memory" if estimate.device == "cuda" else "memory",
        )
    ]
    if estimate.device == "cuda":
        pools.append((estimate.host_bytes, available_memory("cpu"), "memory"))
    for needed, free, what in pools:
        if free is not None and needed * SAFETY_MARGIN > free:
            fix = _fixes(config, n_train_images, n_test_images, _fits_in(free, on_host=what == "memory"))
            raise ValueError(
                f"this run needs up to about {_gb(needed * SAFETY_MARGIN)} of {what} but {_gb(free)} is free: {fix}"
            )
    return estimate


def _fits_in(free: int, *, on_host: bool) -> Callable[[MemoryEstimate], bool]:
    """Whether an estimate's share of that memory, with the margin, fits in `free` bytes."""
    return lambda estimate: (estimate.host_bytes if on_host else estimate.device_bytes) * SAFETY_MARGIN <= free


def _fixes(config: TrainConfig, n_train: int, n_test: int, fits: Callable[[MemoryEstimate], bool]) -> str:
    """'lower --batch-size (e.g. to 2048) or --width (e.g. to 128)': each single setting that, lowered, fits."""
    found = []
    for name, smallest in (("batch_size", 1), ("width", 4), ("epochs", 1)):
        for value in _smaller(getattr(config, name), smallest):
            try:
                smaller = config.replace(**{name: value})
            except ValueError:  # e.g. fewer epochs than lowres_epochs
                break
            if fits(estimate_memory(smaller, n_train, n_test)):
                found.append(f"{cli_flag(name)} (e.g. to {value})")
                break
    if not found:
        return (
            f"lower {cli_flag('batch_size')} and {cli_flag('width')} together, or close other programs to free memory"
        )
    return "lower " + " or ".join(found)


def _smaller(value: int, smallest: int) -> list[int]:
    """Powers of two below `value`, largest first, down to `smallest`: 8192 -> 4096, 2048, ..."""
    power = 1 << max(value - 1, 1).bit_length() - 1  # the largest power of two below value (value > 1)
    return [p for p in (power >> k for k in range(power.bit_length())) if smallest <= p < value]


def _gb(n: float) -> str:
    return f"{n / GB:.1f} GB"


# RuntimeError texts of allocators that could not allocate: PyTorch's CPU allocator on Linux and macOS ("can't
# allocate memory") and on Windows ("not enough memory"), and Apple's MPS backend.
_OUT_OF_MEMORY_TEXTS = (
    "DefaultCPUAllocator: can't allocate memory",
    "DefaultCPUAllocator: not enough memory",
    "out of memory",
)


def memory_failure_message(err: BaseException, config: TrainConfig) -> str | None:
    """The failed run's message when `err` says memory ran out (torch.OutOfMemoryError on a GPU, the CPU
    allocator's RuntimeError, MemoryError), naming the settings to lower; None for any other error."""
    gpu = isinstance(err, torch.OutOfMemoryError)
    if not (
        gpu
        or isinstance(err, MemoryError)
        or (isinstance(err, RuntimeError) and any(text in str(err) for text in _OUT_OF_MEMORY_TEXTS))
    ):
        return None
    batch, width = cli_flag("batch_size"), cli_flag("width")
    settings, lower = f"{batch} {config.batch_size}", f"{batch} (e.g. to {max(1, config.batch_size // 2)})"
    if config.arch != "tutorial":  # the tutorial's net has a fixed size
        settings += f" and {width} {config.width}"
        lower += f" or {width} (e.g. to {max(4, config.width // 2)})"
    return (
        f"ran out of {'GPU memory' if gpu else 'memory'} with {settings}: start a new run with a lower {lower}; "
        "resuming this one as it is would run out again"
    )


def machine_notes(config: TrainConfig) -> list[str]:
    """What this machine will change in `config`, for the user to read before training (e.g. threads lowered to
    the cores present); the training loop applies the same changes and lists them in TrainResult.notes."""
    _, thread_note = effective_threads(config.threads)
    return [thread_note] if thread_note else []
