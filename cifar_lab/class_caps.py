"""The teacher's caps on participants' runs: what a participant's Start is refused for, with the limit named."""

from __future__ import annotations

from .class_settings import ClassSettings
from .config import TrainConfig


def caps_problems(config: TrainConfig, preset: str, settings: ClassSettings, seconds: float | None) -> list[str]:
    """Why the class's caps refuse this run (each names the limit and what to change); [] when it may start.
    `seconds`: the run's estimated length here, None before this machine has measured a comparable run."""
    problems = []
    if settings.presets and preset not in settings.presets:
        problems.append(f"The teacher allows runs from the presets {_names(settings.presets)}; pick one of those.")
    if settings.archs and config.arch not in settings.archs:
        problems.append(f"The teacher allows the architectures {_names(settings.archs)}; pick one of those.")
    if settings.max_epochs and config.epochs > settings.max_epochs and not config.minutes:  # a budget: its minutes
        problems.append(
            f"The teacher allows at most {settings.max_epochs} epochs per run; this run asks for {config.epochs}."
        )
    if settings.max_minutes and seconds is not None and seconds / 60 > settings.max_minutes:
        problems.append(
            f"This run would take about {seconds / 60:.1f} minutes here; the teacher allows at most "
            f"{settings.max_minutes:g} minutes per run. Lower the epochs or the width, or set minutes."
        )
    return problems


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
