"""Self-describing `.pth` checkpoints: weights plus the config that rebuilds the model; safe loading."""

from __future__ import annotations

import io
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .models import MODELS, build_model
from .preprocess import CLASSES

log = logging.getLogger(__name__)

FORMAT = "cifar_lab.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that cannot be used as a model; the message says why and what to do, in words a web page can show
    (no library text, no command-line flags)."""


class NeedsArchitecture(CheckpointError):
    """Bare weights of a network other than the tutorial's: the architecture has to be named (the CLI's --arch)."""


@dataclass(frozen=True)
class Checkpoint:
    model: nn.Module  # on the CPU, in eval mode
    config: TrainConfig
    classes: tuple[str, ...]
    epoch: int
    metrics: dict[str, Any]
    path: Path | None = None
    created: str = ""
    resume: dict[str, Any] = field(default_factory=dict, repr=False)  # optimizer/RNG state, if saved


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | dict[str, torch.Tensor],
    config: TrainConfig,
    *,
    classes: tuple[str, ...],
    epoch: int,
    metrics: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename; an error leaves the old file intact."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "config": config.to_dict(),
        "classes": list(classes),
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if resume:
        payload["resume"] = resume
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialised in memory first: torch.save writing to a full disk raises a RuntimeError that hides the cause,
    # while a plain write raises the OSError (ENOSPC, EROFS, ...) that says it.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    # The pid in the name lets the next run tell a dead save's leftover from a live one (run_files).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be copied and shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(source: str | os.PathLike | bytes, *, arch: str | None = None, name: str = "") -> Checkpoint:
    """Rebuild the model on the CPU; also takes a bare tutorial-style `state_dict` when `arch` names it."""
    label = name or ("the uploaded file" if isinstance(source, bytes) else str(source))
    raw = _read(source, label)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return _from_payload(raw, source, label)
    if isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return _from_bare_state(raw, arch, source, label)
    raise CheckpointError(
        f"{label} is a PyTorch file but not a model checkpoint: expected a cifar_lab "
        "checkpoint or a state_dict of tensors"
    )


def _read(source: str | os.PathLike | bytes, label: str) -> Any:
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{label}: no such file")
        source = path.read_bytes()
    if not source:
        raise CheckpointError(f"{label} is empty (0 bytes); was the save interrupted? Pick another checkpoint")
    try:
        return torch.load(io.BytesIO(source), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():  # torch names the class or function it would have had to import
            raise CheckpointError(
                f"{label} was refused: it holds more than a network's weights (a whole saved network object, for "
                "example), and opening such a file could run code on this computer. Save the weights only, as the "
                "PyTorch tutorial does (a state_dict), or pick a checkpoint saved by this lab."
            ) from err
        raise _corrupt(label, err) from err
    except Exception as err:  # the legacy pickle reader fails on junk with anything: IndexError, struct.error...
        raise _corrupt(label, err) from err


def _corrupt(label: str, err: Exception) -> CheckpointError:
    log.info("%s: torch.load failed: %s", label, " ".join(str(err).split())[:500])  # for whoever debugs, not the page
    return CheckpointError(
        f"{label} is not a model checkpoint this lab can read: the file is damaged, cut short or another kind of "
        "file. Pick a .pth file saved by this lab (the Models page lists them) or a state_dict of a network it knows."
    )


def _from_payload(raw: dict[str, Any], source: Any, label: str) -> Checkpoint:
    try:
        config = TrainConfig.from_dict(raw["config"])
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{label} has an invalid config: {err}") from err
    classes = tuple(raw.get("classes") or CLASSES)
    model = _build_and_load(config, len(classes), raw.get("state_dict", {}), label)
    return Checkpoint(
        model,
        config,
        classes,
        int(raw.get("epoch", 0)),
        dict(raw.get("metrics", {})),
        _path_of(source),
        str(raw.get("created", "")),
        dict(raw.get("resume") or {}),
    )


def _from_bare_state(state: dict[str, torch.Tensor], arch: str | None, source: Any, label: str) -> Checkpoint:
    if arch is None:
        if set(state) == set(build_model(TrainConfig(arch="tutorial")).state_dict()):
            arch = "tutorial"  # the tutorial's own torch.save(net.state_dict(), ...) output
        else:
            raise NeedsArchitecture(
                f"{label} holds weights only, with no record of the network they belong to, and they are not the "
                "PyTorch tutorial's net, so the lab cannot tell which architecture to build. Use a checkpoint saved "
                "by this lab"
            )
    if arch not in MODELS:
        raise CheckpointError(f"unknown architecture {arch!r}; choose one of: {', '.join(MODELS)}")
    # The tutorial normalises with 0.5/0.5, the other architectures with CIFAR's mean/std.
    config = TrainConfig(arch=arch, normalize="half" if arch == "tutorial" else "cifar")
    model = _build_and_load(config, len(CLASSES), state, label)
    return Checkpoint(model, config, CLASSES, 0, {}, _path_of(source))


def _build_and_load(config: TrainConfig, num_classes: int, state: dict[str, torch.Tensor], label: str) -> nn.Module:
    model = build_model(config, num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        log.info("%s: load_state_dict failed: %s", label, " ".join(str(err).split())[:500])
        raise CheckpointError(
            f"{label} does not fit the {config.arch!r} architecture (width {config.width}, "
            f"{num_classes} classes): {_mismatch(model.state_dict(), state)}. Was it saved from another architecture?"
        ) from err
    return model.eval()


def _mismatch(wanted: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str:
    """How the weights differ from the network's, in words: what is missing, extra or of another shape."""
    missing = [k for k in wanted if k not in given]
    extra = [k for k in given if k not in wanted]
    other = [k for k in wanted if k in given and tuple(given[k].shape) != tuple(wanted[k].shape)]
    parts = [
        f"{len(names)} {what} (such as {names[0]!r})"
        for names, what in ((missing, "weights missing"), (extra, "weights it does not have"))
        if names
    ]
    if other:
        shape = lambda t: "x".join(map(str, t.shape)) or "a single number"  # noqa: E731
        parts.append(
            f"{len(other)} of another shape (such as {other[0]!r}: {shape(given[other[0]])} in the file, "
            f"{shape(wanted[other[0]])} in the network)"
        )
    return "; ".join(parts) or "its weights could not be loaded"


def _path_of(source: Any) -> Path | None:
    return None if isinstance(source, bytes) else Path(source)
