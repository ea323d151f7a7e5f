"""What the dashboard decides before drawing: data source, runs folder, saved models, form layout."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ..class_settings import ClassSettings
from ..config import SETTINGS, TrainConfig
from ..data import DEFAULT_SOURCE, SYNTHETIC, CifarData, load_data
from ..datasources import detect_kind, missing_message
from ..devices import trains_on_cpu
from ..labels import visible
from ..models import build_model, count_macs, count_params
from ..paths import SHIPPED_MODEL, models_dir, runs_dir
from ..roles import Viewer
from ..runs import RunStoreError
from ..settings import SECTIONS
from .job_view import JobSnapshot
from .jobs import JobManager


def form_sections() -> dict[str, tuple[str, ...]]:
    """The Train form's columns: section (in SECTIONS order) -> its TrainConfig fields (in declaration order)."""
    names = {section: tuple(n for n, s in SETTINGS.items() if s.section == section) for section in SECTIONS}
    return {section: fields for section, fields in names.items() if fields}


def form_values(config: dict[str, Any]) -> dict[str, Any]:
    """Config values for the form's widgets: float fields as float, since a number input refuses an int there."""
    return {k: float(v) if SETTINGS[k].kind is float else v for k, v in config.items() if k in SETTINGS}


def field_help(name: str, form: Any) -> tuple[str, bool]:
    """A field's tooltip and whether it applies to `form` (the form's values by name)."""
    setting = SETTINGS[name]
    applies = setting.applies is None or setting.applies(form)
    return setting.help_line() + ("" if applies else " (not used with the current choices)"), applies


def model_cost(arch: str, width: int, depth: int, batchnorm: bool) -> tuple[int, int]:
    """(parameters, multiply-adds per 32x32 image) of a freshly built model."""
    model = build_model(TrainConfig(arch=arch, width=width, depth=depth, batchnorm=batchnorm))
    return count_params(model), count_macs(model)


def progress_text(snap: JobSnapshot) -> str:
    """e.g. "running · epoch 2/3, step 120/294 · 1,234 images/s · about 40 s left"."""
    parts = [snap.status]
    if snap.last_step is not None:
        s = snap.last_step
        parts.append(f"epoch {s.epoch}/{snap.config.epochs}, step {s.step}/{s.total_steps}")
    if snap.images_per_s:
        parts.append(f"{snap.images_per_s:,.0f} images/s")
    if snap.eta_s is not None:
        parts.append(f"about {snap.eta_s:,.0f} s left")
    return " · ".join(parts)


LIVE_REFRESH_S = 1.0  # how often the Train page redraws a running job's progress and charts, off the CPU
CPU_LIVE_REFRESH_S = 10.0  # where training runs on the CPU, which the browser drawing them shares (see benchmarks.md)


def live_refresh_s(config: TrainConfig) -> float:
    """Seconds between redraws of a running job: longer where training runs on the CPU."""
    return CPU_LIVE_REFRESH_S if trains_on_cpu(config.device) else LIVE_REFRESH_S


def model_dirs() -> tuple[Path, ...]:
    """Folders searched for *.pth: the runs folder, then the models folder."""
    return (runs_dir(), models_dir())


def shipped_models(folder: Path | None = None) -> list[Path]:
    """The *.pth in the models folder (default models_dir()): SHIPPED_MODEL first, then the others by name."""
    folder = models_dir() if folder is None else folder
    found = sorted(p for p in folder.glob("*.pth") if p.is_file()) if folder.is_dir() else []
    return sorted(found, key=lambda p: p.name != SHIPPED_MODEL)  # stable: the rest stay in name order


@dataclass(frozen=True)
class DataChoice:
    source: str | None  # what to pass to load_data; None when nothing usable was found
    problem: str  # why the default is unusable and how to fix it; "" when fine
    options: tuple[str, ...]  # what the data selectbox offers, the default first


def data_choice(env: Mapping[str, str] | None = None) -> DataChoice:
    """Env CIFAR_LAB_DATA, else ./data when it holds CIFAR-10; otherwise no default and a message with the fix."""
    env = os.environ if env is None else env
    given = env.get("CIFAR_LAB_DATA", "")
    if given:
        return DataChoice(given, "", _unique((given, SYNTHETIC, DEFAULT_SOURCE)))
    path = Path(DEFAULT_SOURCE).resolve()
    if detect_kind(path, download=False) is not None:
        return DataChoice(DEFAULT_SOURCE, "", (DEFAULT_SOURCE, SYNTHETIC))
    problem = missing_message(DEFAULT_SOURCE, path) + " Or set CIFAR_LAB_DATA before starting the dashboard."
    return DataChoice(None, problem, (SYNTHETIC, DEFAULT_SOURCE))


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class ModelInfo:
    """One saved checkpoint as the Models page lists it."""

    path: Path
    name: str
    arch: str
    accuracy: float | None  # 0..1: the final full test set score, else the last epoch's subset score
    epoch: int
    created: str  # ISO time stored in the file, else the file's modification time
    size_mb: float
    error: str = ""  # why the file cannot be loaded; "" when it can


def find_checkpoints(dirs: tuple[Path, ...] | None = None) -> list[Path]:
    """Every *.pth in `dirs` (default model_dirs()), newest first."""
    found = [p for d in (dirs or model_dirs()) if d.is_dir() for p in d.glob("*.pth") if p.is_file()]
    return sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True)


def describe(path: Path, load: Callable[[Path], Checkpoint]) -> ModelInfo:
    """A listing row for `path`, using `load` (a cached load_checkpoint) to read it."""
    stat = path.stat()
    fallback_time = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="seconds")
    size = stat.st_size / 1e6
    try:
        ckpt = load(path)
    except CheckpointError as err:
        return ModelInfo(path, path.stem, "?", None, 0, fallback_time, size, str(err))
    return ModelInfo(
        path, path.stem, ckpt.config.arch, accuracy_of(ckpt.metrics), ckpt.epoch, ckpt.created or fallback_time, size
    )


def accuracy_of(metrics: dict[str, Any]) -> float | None:
    """The headline accuracy stored in a checkpoint's metrics."""
    for key in ("test_accuracy", "test_accuracy_subset"):
        if isinstance(metrics.get(key), (int, float)):
            return float(metrics[key])
    return None


def current_model(
    chosen: str | None, class_model: str, available: list[Path], shipped: list[Path] | None = None
) -> tuple[Path | None, str]:
    """The model a session uses and why: the one this session chose ("yours"), else the class model the teacher
    made current ("class", a file name among `available`), else the first shipped one ("shipped"). Never merely
    the newest file: a running job's half-trained checkpoint is used only once someone chooses it."""
    if chosen and Path(chosen).is_file():
        return Path(chosen), YOURS
    if class_model:
        found = by_name(class_model, available)
        if found is not None:
            return found, CLASS
    return (shipped[0], SHIPPED) if shipped else (None, "")


YOURS, CLASS, SHIPPED = "yours", "class", "shipped"  # why a session uses its model


def by_name(name: str, paths: Iterable[Path]) -> Path | None:
    """The checkpoint called `name` (a file name, as a URL or the class settings hold it), or None."""
    return next((p for p in paths if p.name == name), None)


def shipped_note(path: Path, ckpt: Checkpoint) -> str:
    """What Classify and Evaluate say when they fall back on a shipped model, with its stored test accuracy."""
    accuracy = accuracy_of(ckpt.metrics)
    source = ckpt.metrics.get("data_source")
    score = f", test accuracy {accuracy:.1%}" if accuracy is not None else ""
    score += f" on {source}" if score and isinstance(source, str) and source else ""
    card = path.with_suffix(".md")
    # File names only: a student's phone has no use for the server's folders; the Models page lists the folder.
    card_text = f" How it was trained: its card, {card.name}, beside it." if card.is_file() else ""
    return (
        f"Using the shipped pretrained model {path.name} ({ckpt.config.arch}{score}) because no model of your own "
        f"is current: train your own on the Train page, or pick another on the Models page.{card_text}"
    )


def safe_upload_name(filename: str, folder: Path) -> Path:
    """A path in `folder` for an uploaded checkpoint that never overwrites an existing one."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(filename).stem).strip("-.")
    stem = stem or "uploaded"
    candidate, n = folder / f"{stem}.pth", 2
    while candidate.exists():
        candidate, n = folder / f"{stem}-{n}.pth", n + 1
    return candidate


@dataclass(frozen=True)
class Lab:
    """What every page needs, resolved once per script run by dashboard.py and shared with the pages."""

    jobs: JobManager
    source: str  # the data source in use (what load_data gets)
    data_problem: str  # why the default data source is unusable, with the fix; "" when fine
    load_data: Callable[[], CifarData]  # cached by the dashboard; raises DataError
    models: tuple[Path, ...]  # saved checkpoints, newest first
    model_path: Path | None  # the model this session uses
    load_model: Callable[[Path], Checkpoint]  # cached by the dashboard; raises CheckpointError
    shipped: bool = False  # the model is a shipped one, used because no other is chosen
    model_reason: str = ""  # YOURS, CLASS or SHIPPED: why this session uses model_path
    viewer: Viewer = field(default_factory=Viewer)  # who is using this session
    settings: ClassSettings = field(default_factory=ClassSettings)  # the teacher's choices for the class

    def model(self) -> Checkpoint | None:
        return self.load_model(self.model_path) if self.model_path is not None else None


# Makes a function's results process-wide; the dashboard passes st.cache_resource.
Cache = Callable[[Callable], Callable]


def job_manager(runs: str) -> JobManager:
    """One per runs folder and process (through the cache): a job outlives page switches and reloads. When the
    server stops (Ctrl+C), its runs are interrupted cleanly: atexit runs before the interpreter ends daemon threads."""
    manager = JobManager(runs)
    atexit.register(manager.shutdown)
    return manager


def checkpoint_at(path: str, mtime_ns: int) -> Checkpoint:
    """load_checkpoint, with the file's mtime in the cache key so a re-saved file is read again."""
    return load_checkpoint(path)


# Any keys: st.session_state is a MutableMapping[str | int, Any], and a test's plain dict[str, Any] is not one.
def open_lab(cache: Cache, state: MutableMapping[Any, Any]) -> Lab:
    """The shared objects for a page: `cache` keeps them process-wide, `state` (the session) holds the choices:
    "viewer" (who this is), "model_path" (the model this session chose)."""
    choice = data_choice()
    source = state.get("data_source") or choice.options[0]
    models = tuple(find_checkpoints())
    shipped = shipped_models()
    jobs = cache(job_manager)(str(runs_dir().resolve()))
    settings = _class_settings(jobs)
    chosen = state.get("model_path") or _path_of(by_name(state.get("model_name") or "", models))
    model_path, reason = current_model(chosen, settings.class_model, list(models), shipped)
    return Lab(
        jobs=jobs,
        source=source,
        data_problem=choice.problem,
        load_data=lambda: cache(load_data)(source),
        models=models,
        model_path=model_path,
        load_model=lambda p: cache(checkpoint_at)(str(p), p.stat().st_mtime_ns),
        shipped=reason == SHIPPED,
        model_reason=reason,
        viewer=state.get("viewer") or Viewer(),
        settings=settings,
    )


def _path_of(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def model_line(lab: Lab, ckpt: Checkpoint) -> str:
    """e.g. "fastnet-20261207 · trained by Ada · test accuracy 86.2% · the class model": what every page says of
    the model it uses."""
    assert lab.model_path is not None
    parts = [lab.model_path.stem, _trained_by(lab, lab.model_path)]
    accuracy = accuracy_of(ckpt.metrics)
    if accuracy is not None:
        parts.append(f"test accuracy {accuracy:.1%}")
    parts.append(
        {YOURS: "your choice", CLASS: "the class model", SHIPPED: "the lab's default"}.get(lab.model_reason, "")
    )
    return " · ".join(p for p in parts if p)


def _trained_by(lab: Lab, path: Path) -> str:
    if lab.model_reason == SHIPPED or path.parent == models_dir():
        return "shipped with the lab"
    try:
        record = lab.jobs.store.run_of_checkpoint(path) if lab.jobs.store is not None else None
    except RunStoreError:
        record = None
    if record is None:
        return "added as a file"
    return f"trained by {visible(record.owner)}" if record.owner else f"trained in run {record.id}"


def _class_settings(jobs: JobManager) -> ClassSettings:
    try:
        return jobs.settings()
    except RunStoreError:  # the page says the store's problem; the class runs on defaults meanwhile
        return ClassSettings()
