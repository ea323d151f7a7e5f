"""Write docs/configuration.md from the settings TrainConfig declares; with --check, only say whether it is current.

.venv/bin/python scripts/configuration_doc.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the cifar_lab next to this script, installed or not

from cifar_lab.configdoc import DOC_PATH, render  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from a fresh rendering")
    args = parser.parse_args()
    path, text = ROOT / DOC_PATH, render()
    if args.check:
        current = path.is_file() and path.read_text(encoding="utf-8") == text
        print(f"{DOC_PATH} is {'current' if current else 'stale: run scripts/configuration_doc.py'}")
        return 0 if current else 1
    path.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
