"""`python -m cifar_lab train|evaluate|predict|bench|runs|serve`: the command-line contract."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import paths, run_check
from .config import ARCHS, PRESETS, RUN_LENGTH, SETTINGS, TrainConfig, budget_dropped, cli_flag, cli_setting, preset
from .events import EpochEnd, Event, Failed, Finished, Planned, Step, Stopped
from .executors import ENV_EXECUTOR, ENV_RAY_ADDRESS, RAY_INSTALL, Executor, make_executor, ray_executor
from .labels import visible
from .logs import configure as configure_logging
from .run_files import SaveError
from .runs import STATUSES as RUN_STATUSES
from .runs import RunStore, default_db_path
from .time_left import TimeLeft

if TYPE_CHECKING:
    from .bench import Variant
    from .runner import TrainingRun

EXIT_USER_ERROR = 2
SWEEP_SCHEDULERS = ("fifo", "asha")  # sweep.SCHEDULERS, named here so that --help needs no Ray
DEFAULT_PRESET = "classroom"
CONSOLE_SCRIPT = "cifar-lab"  # pyproject.toml's [project.scripts] name
MODULE_PROG = "python -m cifar_lab"


class UserError(Exception):
    """A mistake the user can fix; shown as one line, exit status 2."""


def prog_name(argv0: str) -> str:
    """The command as the user typed it, from sys.argv[0]: `cifar-lab` (the console script) or `python -m cifar_lab`."""
    return CONSOLE_SCRIPT if Path(argv0).name.removesuffix(".exe") == CONSOLE_SCRIPT else MODULE_PROG


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one readable line instead of usage + error
        raise UserError(f"{message} (see `{self.prog} --help`)")  # a subcommand's prog is `<prog> <command>`


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, but a subcommand's unknown flag points at that subcommand's help (argparse names the top one)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise UserError(f"unrecognized arguments: {' '.join(unknown)} (see `{parser.prog} {args.command} --help`)")
    return args


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed and described by its setting; unset flags keep the preset's value."""
    group = parser.add_argument_group("training configuration (override the preset)")
    for name, setting in SETTINGS.items():
        help_text = setting.help_line().replace("%", "%%")  # argparse formats help with %
        if setting.kind is bool:
            group.add_argument(
                cli_flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            group.add_argument(
                cli_flag(name),
                dest=name,
                type=setting.kind,
                default=None,
                metavar=name.upper(),
                choices=list(setting.choices) or None,
                help=help_text,
            )


def build_parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    """The CLI; `prog` is how the user started it (prog_name), used in usage lines and error hints."""
    parser = _Parser(prog=prog, description="Train, evaluate and use CIFAR-10 classifiers.")
    parser.set_defaults(prog=prog)  # for messages that suggest a follow-up command
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    runs_help = "the run history (SQLite) recording every run"
    runs_folder = "$CIFAR_LAB_RUNS, else runs/ in the source checkout, else ~/.local/share/cifar_lab/runs"
    checkpoint_help = f"a .pth file, or the name of a shipped model (e.g. {paths.SHIPPED_MODEL.removesuffix('.pth')})"
    data_help = (
        "CIFAR-10 source: a torchvision folder, an image folder with train/ and test/, or 'synthetic' "
        "(default: $CIFAR_LAB_DATA, else ./data)"
    )

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    t.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="starting configuration")
    t.add_argument("--data", default=None, help=data_help)
    t.add_argument("--download", action="store_true", help="download torchvision's CIFAR-10 into --data (internet)")
    t.add_argument(
        "--out",
        default=str(paths.runs_dir()),
        help=f"folder for the checkpoint (default: the runs folder, {runs_folder}; here %(default)s)",
    )
    t.add_argument("--name", default=None, help="checkpoint file name without .pth (default: preset and time)")
    t.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    t.add_argument(
        "--runs-db", default=None, help=runs_help + "; default: $CIFAR_LAB_RUNS_DB, else <--out>/cifar_lab.db"
    )
    t.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="continue a stopped, interrupted or failed run from its last epoch, with its own config",
    )
    _add_ray_flag(t, "train")
    _add_config_flags(t)

    e = sub.add_parser("evaluate", help="score a checkpoint on the test set")
    e.add_argument("checkpoint", type=paths.checkpoint_path, help=checkpoint_help)
    e.add_argument("--data", default=None, help=data_help)
    e.add_argument("--arch", default=None, help="architecture of a bare state_dict (e.g. tutorial)")
    e.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation: the mirror image, plus the shifted copies the model's config asks "
        "for (default: as the model was trained)",
    )
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")

    p = sub.add_parser("predict", help="classify image files with a checkpoint")
    p.add_argument("checkpoint", type=paths.checkpoint_path, help=checkpoint_help)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=int, default=3, help="how many classes to show per image (default 3)")
    p.add_argument("--arch", default=None, help="architecture of a bare state_dict (e.g. tutorial)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    r = sub.add_parser("runs", help="list the recorded training runs, newest first")
    r.add_argument(
        "--runs-db",
        default=None,
        help=f"{runs_help}; default: $CIFAR_LAB_RUNS_DB, else cifar_lab.db in the runs folder ({runs_folder})",
    )
    r.add_argument("--status", default=None, choices=RUN_STATUSES, help="only runs with this status")
    r.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    r.add_argument(
        "--check",
        action="store_true",
        help="list the damaged rows (id and problem), one a line; exit 1 when there are some",
    )
    r.add_argument(
        "--repair",
        action="store_true",
        help="with --check: move damaged rows, with their epochs and steps, to the quarantine tables",
    )

    b = sub.add_parser("bench", help="time-to-accuracy benchmark of the presets on the same data")
    b.add_argument("--data", default=None, help=data_help)
    b.add_argument("--full", action="store_true", help="also train the 'best' preset")
    b.add_argument(
        "--presets",
        default=None,
        help="comma-separated presets to run (default: tutorial,improved,classroom)",
    )
    b.add_argument(
        "--seeds",
        default=None,
        help="train each preset once per seed, e.g. 0-4,7, and add each preset's mean accuracy, its spread "
        "between seeds and its standard error; default: once, with the preset's own seed",
    )
    b.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="'PRESET --FLAG VALUE ...'",
        help="also train a preset with training flags changed (those of `train`), as a row of its own, "
        "e.g. --variant 'best --epochs 13 --lowres-epochs 4'; repeat for more. With --seeds, each "
        "seed trains every preset and variant before the next seed, so they run side by side",
    )
    b.add_argument("--throughput", action="store_true", help="measure loop vs bare throughput and data-load times")
    b.add_argument("--json", dest="json_path", default="bench.json", help="where to write the table as JSON")

    w = sub.add_parser("sweep", help="compare settings over many runs with Ray Tune, on a validation hold-out")
    w.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="the settings every trial starts from"
    )
    w.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="a setting to vary: NAME=V1,V2 (a grid) or NAME=LOW:HIGH[:log] (a range sampled at random); repeatable",
    )
    w.add_argument("--samples", type=int, default=1, help="trials per grid point, or draws from the ranges (default 1)")
    w.add_argument(
        "--scheduler", default="fifo", choices=SWEEP_SCHEDULERS, help="asha ends weak trials early (default fifo)"
    )
    w.add_argument("--data", default=None, help=data_help)
    w.add_argument("--out", default=str(paths.runs_dir()), help="folder for the trials' checkpoints (as train's)")
    w.add_argument("--runs-db", default=None, help=runs_help + "; default: <--out>/cifar_lab.db")
    w.add_argument("--json", action="store_true", help="print the sweep as one JSON object on the last line")
    _add_ray_flag(w, "sweep")
    _add_config_flags(w)

    s = sub.add_parser("serve", help="run the dashboard for a class: students join on the local network")
    s.add_argument("--port", type=int, default=8501, help="the port to listen on (default %(default)s)")
    s.add_argument(
        "--https",
        action="store_true",
        help="serve HTTPS, which phones need for their camera, with a self-signed certificate made on first use "
        "in $XDG_CACHE_HOME/cifar_lab/tls (else ~/.cache/cifar_lab/tls); pip install 'cifar-lab[https]'",
    )
    s.add_argument("--cert", default=None, metavar="FILE", help="your own PEM certificate (implies --https)")
    s.add_argument("--key", default=None, metavar="FILE", help="the unencrypted PEM private key of --cert")
    s.add_argument("--local", action="store_true", help="listen on 127.0.0.1 only: no one else can join")
    return parser


def _add_ray_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help=f"{what} on a Ray cluster: 'local' starts one on this machine, 'auto' or HOST:PORT joins a running one "
        f"(default: ${ENV_EXECUTOR}=ray with ${ENV_RAY_ADDRESS}, else here); needs `{RAY_INSTALL}`",
    )


def executor_from_args(args: argparse.Namespace) -> Executor:
    """--ray ADDRESS, else what $CIFAR_LAB_EXECUTOR and $CIFAR_LAB_RAY_ADDRESS say; RayMissing (exit 2) without Ray."""
    return ray_executor(args.ray) if args.ray else make_executor()


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return preset(args.preset, **_config_overrides(args))


def same_run_command(args: argparse.Namespace, config: TrainConfig) -> str:
    """The command line that trains `config` exactly: the preset, then a flag for every field that differs."""
    base = preset(args.preset)
    flags = [f"{args.prog} train --preset {args.preset}"]
    flags += [cli_setting(n, getattr(config, n)) for n in SETTINGS if getattr(config, n) != getattr(base, n)]
    if args.data:
        flags.append(f"--data {shlex.quote(str(args.data))}")
    return " ".join(flags)


def _flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields whose flags were given."""
    return {name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None}


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the flags set, on top of args.preset."""
    overrides = _flags_given(args)
    base = PRESETS.get(args.preset, {})
    arch = overrides.get("arch", "fastnet")
    if arch in ARCHS and arch != "fastnet" and base.get("opt") == "muon" and "opt" not in overrides:
        # Muon needs fastnet's filter groups; another --arch on a fastnet preset gets that preset's SGD sibling.
        overrides["opt"] = "sgd"
        print(
            f"note: --arch {overrides['arch']} with the {args.preset} preset trains with --opt sgd "
            "(muon is for fastnet)",
            file=sys.stderr,
        )
    return overrides


def budget_note(args: argparse.Namespace) -> str:
    """Why a preset given by time trains without its budget, when the flags set its length; else empty."""
    overrides = _flags_given(args)
    if args.preset not in PRESETS or not budget_dropped(args.preset, overrides):
        return ""
    named = ", ".join(cli_flag(n) for n in RUN_LENGTH if n in overrides)
    return (
        f"{named} given, so the {args.preset} preset's {PRESETS[args.preset]['minutes']:g}-minute budget is off "
        "and the run trains exactly as set (add --minutes M to fit it to M minutes instead)"
    )


def parse_variant(text: str) -> Variant:
    """`bench --variant 'best --epochs 13 --lowres-epochs 4'`: a preset, then `train`'s configuration flags."""
    from .bench import Variant

    parser = _Parser(prog="python -m cifar_lab train", add_help=False)
    parser.add_argument("preset", choices=list(PRESETS))
    _add_config_flags(parser)
    try:
        words = shlex.split(text)
        args = parser.parse_args(words)
        overrides = _config_overrides(args)
        if not overrides:  # its rows would read as the plain preset's and be averaged with them
            raise UserError(f"it changes nothing in {args.preset}; to train the preset itself, name it in --presets")
        preset(args.preset, **overrides)  # an invalid value fails now, not after the runs before it
    except (UserError, ValueError) as err:
        raise UserError(
            f"--variant {text!r}: {err}; write a preset, then training flags, e.g. "
            f"--variant 'best --epochs 13 --lowres-epochs 4'"
        ) from None
    return Variant(args.preset, shlex.join(words[1:]), overrides)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run one command; `prog` defaults to how this process was started (prog_name of sys.argv[0])."""
    configure_logging(logging.WARNING)  # the progress bar and the summary speak for a run; the log only for trouble
    try:
        args = _parse(build_parser(prog or prog_name(sys.argv[0])), argv)
        return COMMANDS[args.command](args)
    except (UserError, ValueError, SaveError, FileNotFoundError, PermissionError, IsADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    from .data import load_data, resolve_source
    from .devices import slow_cpu_note
    from .limits import machine_notes
    from .roles import cli_owner
    from .runner import TrainingRun, check_run, new_run

    if args.resume is not None:
        return _resume(args, _open_store(args.runs_db, args.out))
    config = config_from_args(args)  # a typo in a flag is reported before anything is written
    executor = executor_from_args(args)  # so is a cluster asked for without Ray installed
    check_run(config, args.out)  # an unusable --out or device is refused before the data is loaded
    data = load_data(args.data, download=args.download)
    store = _open_store(args.runs_db, args.out)
    plan = new_run(
        config,
        folder=args.out,
        store=store,
        name=args.name,
        data_source=resolve_source(args.data),
        data=data,
        owner=cli_owner(),
        preset=args.preset,
    )
    print(
        f"run {plan.run_id} (resume it, if it ends early, with: {args.prog} train --resume {plan.run_id})",
        file=sys.stderr,
    )
    notes = [*filter(None, [budget_note(args)]), *machine_notes(config)]
    if config.precision == "auto" and (note := slow_cpu_note(config.device)):
        notes.append(note)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return _run_session(TrainingRun(plan, data, store=store, executor=executor), args)


def _resume(args: argparse.Namespace, store: RunStore) -> int:
    """Continue a recorded run from its last epoch checkpoint, with the config it was started with."""
    from .data import load_data
    from .runner import TrainingRun, resume_run

    if not args.resume.strip():
        raise UserError(f"--resume needs a run id; list them with `{args.prog} runs`")
    changed = [cli_flag(f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name, None) is not None]
    if changed:
        raise UserError(f"--resume continues with the run's own config; drop {', '.join(changed)}")
    executor = executor_from_args(args)
    plan = resume_run(store, args.resume)
    data = load_data(args.data or plan.data_source)
    print(f"resuming run {plan.run_id} after epoch {plan.saved_epoch} of {plan.config.epochs}", file=sys.stderr)
    return _run_session(TrainingRun(plan, data, store=store, executor=executor), args)


def _run_session(run: TrainingRun, args: argparse.Namespace) -> int:
    progress = ProgressPrinter(
        sys.stderr,
        TimeLeft.for_data(run.plan.config, len(run.data.test_y)),
        again=lambda config: same_run_command(args, config),
    )
    result = run.run(on_event=progress, stop=threading.Event())
    if result.status == "failed":
        raise UserError(result.message)
    summary = run.summary(result)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .sweep_cli import run_sweep

    return run_sweep(args)


def _open_store(runs_db: str | None, runs_dir: str | None = None) -> RunStore:
    """The run store, with runs whose process died marked 'interrupted' (this is the "next start")."""
    store = RunStore(runs_db or default_db_path(runs_dir))
    store.mark_interrupted()
    return store


def _runs(args: argparse.Namespace) -> int:
    if args.repair and not args.check:
        raise UserError("--repair goes with --check: `python -m cifar_lab runs --check --repair`")
    store = _open_store(args.runs_db)
    if args.check:
        return run_check.report(store, repair=args.repair)
    records = store.list_runs(status=args.status)
    if args.json:
        print(json.dumps([r.to_dict() for r in records]))
        return 0
    print(f"{'id':<12} {'status':<12} {'epochs':>6} {'test acc':>8}  {'started (UTC)':<19}  name")
    for r in records:
        accuracy = "" if r.test_accuracy is None else f"{r.test_accuracy:.2%}"
        status, note = ("damaged", f"  ({r.damaged})") if r.damaged else (r.status, "")
        print(
            f"{r.id:<12} {status:<12} {r.epochs_done:>6} {accuracy:>8}  {r.started[:19]:<19}  {visible(r.name)}" + note
        )
    if damaged := sum(bool(r.damaged) for r in records):
        print(
            f"{damaged} damaged run(s): `python -m cifar_lab runs --check --repair` moves them to a quarantine table",
            file=sys.stderr,
        )
    return 0


def _load_named(args: argparse.Namespace) -> Any:
    """The checkpoint; bare weights of another net than the tutorial's ask for the flag that names it."""
    from .checkpoint import NeedsArchitecture, load_checkpoint
    from .models import MODELS

    try:
        return load_checkpoint(args.checkpoint, arch=args.arch)
    except NeedsArchitecture as err:
        raise UserError(f"{err}, or name its architecture with --arch (one of: {', '.join(MODELS)})") from None


def _evaluate(args: argparse.Namespace) -> int:
    from .data import load_data
    from .evaluate import evaluate_checkpoint

    ckpt = _load_named(args)
    data = load_data(args.data)
    tta = ckpt.config.tta if args.tta is None else args.tta
    result = evaluate_checkpoint(ckpt, data.test_x, data.test_y, classes=data.classes, tta=tta)
    summary = {"checkpoint": str(args.checkpoint), "data": data.source, "tta": tta, **result.summary()}
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .inference import open_image, predict

    if args.top < 1:
        raise UserError(f"--top {args.top} is not valid; it must be 1 or more")
    ckpt = _load_named(args)
    results = []
    for path in args.images:
        preds = predict(
            ckpt.model, open_image(path), classes=ckpt.classes, normalize=ckpt.config.normalize, top=args.top
        )
        results.append({"image": path, "top": [{"class": p.label, "probability": p.probability} for p in preds]})
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"]))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    args.variants = [parse_variant(text) for text in args.variant or ()]
    return bench_main(args)


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(port=args.port, https=args.https, cert=args.cert, key=args.key, local=args.local)


COMMANDS = {
    "train": _train,
    "sweep": _sweep,
    "evaluate": _evaluate,
    "predict": _predict,
    "bench": _bench,
    "runs": _runs,
    "serve": _serve,
}


class ProgressPrinter:
    """A listener drawing a one-line progress bar per epoch, then the epoch's scores."""

    def __init__(
        self,
        stream: Any,
        time_left: TimeLeft | None = None,
        width: int = 30,
        again: Callable[[TrainConfig], str] | None = None,
    ) -> None:
        """again: the command that trains a config exactly, printed when a time budget has chosen one."""
        self.stream, self.time_left, self.width, self.again = stream, time_left, width, again
        # Redrawing a bar with carriage returns only makes sense on a terminal, not in a log file.
        self.live = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, event: Event) -> None:
        if isinstance(event, Planned):
            self._write(event.summary + "\n")
            if self.again is not None:
                self._write(f"the same run again, without a budget: {self.again(event.config)}\n")
        if self.time_left is not None:
            self.time_left(event)
        if isinstance(event, Step) and self.live:
            done = int(self.width * event.step / event.total_steps)
            bar = "#" * done + "-" * (self.width - done)
            left = self.time_left.seconds() if self.time_left is not None else None
            self._write(
                f"\repoch {event.epoch} [{bar}] {event.step}/{event.total_steps} loss {event.loss:.3f} "
                f"{event.images_per_s:,.0f} img/s" + (f" ~{left:.0f}s left " if left is not None else "  ")
            )
        elif isinstance(event, EpochEnd):
            held_out = "" if event.val_acc is None else f" | validation acc {event.val_acc:.1%}"
            self._write(
                f"{chr(13) if self.live else ''}epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.3f} "
                f"acc {event.train_acc:.1%} | test loss {event.test_loss:.3f} acc {event.test_acc:.1%}{held_out} "
                f"| {event.seconds:.1f}s{' ' * 20}\n"
            )
        elif isinstance(event, Finished):
            held_out = "" if event.validation_accuracy is None else f", validation {event.validation_accuracy:.2%}"
            self._write(f"test accuracy {event.test_accuracy:.2%}{held_out} after {event.train_seconds:.1f}s\n")
        elif isinstance(event, Stopped):
            self._write(f"\nstopped after {event.epochs_done} epoch(s)\n")
        elif isinstance(event, Failed):
            self._write(f"\nfailed: {event.message}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _print_summary(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        if key == "per_class_accuracy":
            print("per-class accuracy:")
            for cls, acc in value.items():
                print(f"  {cls:<12} {acc:.1%}")
        elif key == "confusion_matrix":
            print("confusion matrix (rows = true, columns = predicted):")
            for row in value:
                print("  " + " ".join(f"{n:5d}" for n in row))
        elif isinstance(value, float):
            print(f"{key}: {value:.4f}")
        else:
            print(f"{key}: {value}")
