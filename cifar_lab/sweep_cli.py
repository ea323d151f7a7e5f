"""`python -m cifar_lab sweep`: the command line's side of a sweep (sweep.py), a line per trial as it starts and
ends, then a table or, with --json, one object on the last line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING

from .executors import ENV_RAY_ADDRESS, ray_address, require_ray
from .sweep_space import parse_param, trial_count

if TYPE_CHECKING:
    from .sweep_record import Trial


def run_sweep(args: argparse.Namespace) -> int:
    from .cli import UserError, _open_store, config_from_args
    from .data import load_data, resolve_source
    from .roles import cli_owner
    from .runner import check_run

    if not args.param:
        raise UserError("a sweep needs at least one --param, e.g. --param lr=0.5,1,2")
    params = tuple(parse_param(text) for text in args.param)
    base = config_from_args(args)
    require_ray(ray_address(args.ray))  # before the data loads: exit 2 naming the install command
    from .sweep import Sweep, SweepSpec

    spec = SweepSpec(
        base,
        params,
        samples=args.samples,
        scheduler=args.scheduler,
        preset=args.preset,
        owner=cli_owner(),
        data_source=resolve_source(args.data),
    )
    check_run(base, args.out)
    data = load_data(args.data)
    store = _open_store(args.runs_db, args.out)
    address = ray_address(args.ray)
    total = trial_count(list(params), args.samples)
    print(f"sweep of {total} trial(s) on Ray at {address!r} (--ray, ${ENV_RAY_ADDRESS})", file=sys.stderr)
    sweep = Sweep(spec, data, folder=args.out, store=store, address=address, on_trial=_Progress())
    summary = sweep.run()
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0 if summary["trials"] else 1


class _Progress:
    """One line per trial started and ended, on stderr; trials end on several threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, what: str, trial: Trial) -> None:
        values = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        line = f"trial {trial.run_id} ({values}) {what}"
        if what == "ended":
            line += f": {trial.status} after {trial.epochs} epoch(s) on {trial.node or '?'}, " + _scores(
                trial.val_accuracy, trial.test_accuracy
            )
        with self._lock:
            print(line, file=sys.stderr, flush=True)


def _scores(val: float | None, test: float | None) -> str:
    show = lambda x: "-" if x is None else f"{x:.2%}"  # noqa: E731
    return f"validation {show(val)}, test {show(test)}"


def _print(summary: dict) -> None:
    trials = sorted(summary["trials"], key=lambda t: -(t["val_accuracy"] or -1))
    print(f"{summary['sweep_id']}: {len(trials)} trial(s) in {summary['seconds']:.0f} s, best first")
    print(f"{'run':<12} {'status':<10} {'validation':>10} {'test':>8}  {'node':<22} settings")
    for t in trials:
        val = "" if t["val_accuracy"] is None else f"{t['val_accuracy']:.2%}"
        test = "" if t["test_accuracy"] is None else f"{t['test_accuracy']:.2%}"
        values = " ".join(f"{k}={v}" for k, v in t["params"].items())
        print(f"{t['run_id']:<12} {t['status']:<10} {val:>10} {test:>8}  {t['node']:<22} {values}")
