"""docs/configuration.md, rendered from the settings TrainConfig declares (scripts/configuration_doc.py writes it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config import PRESETS, SETTINGS
from .settings import SECTIONS, Setting, cli_flag

DOC_PATH = "docs/configuration.md"  # relative to the repository root

HEADER = """# Configuration

Every training setting, as `TrainConfig` in `cifar_lab/config.py` declares it. The same declarations make the flags
of `python -m cifar_lab train`, the dashboard's Train form (one column per section below) and the checks that refuse
a bad value with a message naming the setting. A run starts from a preset (`--preset`; see [Presets](#presets));
flags and the form change single settings. A setting that is not used with the other choices (the last column) is
kept but has no effect; the form greys it out.

This page is generated: edit the declarations, then run `python scripts/configuration_doc.py`."""

COLUMNS = ("setting", "flag", "default", "allowed", "unit", "what it does", "used when")


def render() -> str:
    """The whole page: one table per form section, then the presets."""
    parts = [HEADER]
    for section in SECTIONS:
        names = [name for name, s in SETTINGS.items() if s.section == section]
        parts.append(f"## {section}\n\n{_table(COLUMNS, [_row(name, SETTINGS[name]) for name in names])}")
    rows = [
        (f"`{name}`", ", ".join(f"{key}={_value(value)}" for key, value in changes.items()))
        for name, changes in PRESETS.items()
    ]
    parts.append(
        "## Presets\n\nEach preset is the settings it changes from the defaults above.\n\n"
        + _table(("preset", "changes"), rows)
    )
    return "\n\n".join(parts) + "\n"


def _row(name: str, s: Setting) -> tuple[str, ...]:
    flag = f"`{cli_flag(name)}` / `--no-{cli_flag(name)[2:]}`" if s.kind is bool else f"`{cli_flag(name)}`"
    if s.choices:
        allowed = "<br>".join(
            f"`{choice}`: {meaning}" if meaning else f"`{choice}`" for choice, meaning in s.choices.items()
        )
    else:
        allowed = s.range_text() or "on, off"
    return (f"`{name}`", flag, _value(s.default), allowed, s.unit, s.help, s.applies.text if s.applies else "always")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [header, tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)
