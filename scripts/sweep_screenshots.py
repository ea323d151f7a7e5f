"""Screenshots of the Sweep page (a sweep from the run store, e.g. one `sweep` ran from the command line) and of the
Class page's cluster nodes, on a desktop and a phone-sized screen.

    python scripts/sweep_screenshots.py --runs RUNS_FOLDER --data ../shared/data/cifar10-jpeg --out docs/sweep

The runs folder is copied first, so the shots change nothing in it. The dashboard trains on a local Ray instance
(CIFAR_LAB_EXECUTOR=ray), which the Class page lists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.screenshots import serving, settle  # noqa: E402

TALL = 2600  # pixels: the pages scroll inside Streamlit's own frame, so a shot shows only what the viewport holds
DESKTOP: ViewportSize = {"width": 1280, "height": TALL}
PHONE: ViewportSize = {"width": 390, "height": TALL + 1400}  # a phone's narrow columns make the page longer


def shoot(page: Page, url: str, folder: Path, suffix: str) -> None:
    page.goto(f"{url}/Sweep")
    page.get_by_role("button", name="Use this config").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    page.screenshot(path=str(folder / f"sweep{suffix}.png"))
    page.goto(f"{url}/Class")
    page.get_by_text("run(s) at a time").wait_for()
    settle(page)
    page.screenshot(path=str(folder / f"class_nodes{suffix}.png"))
    print(f"saved {folder}/sweep{suffix}.png and class_nodes{suffix}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="a runs folder whose store holds a sweep")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs" / "sweep"))
    args = parser.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["CIFAR_LAB_EXECUTOR"] = "ray"
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(scratch) / "runs"
        shutil.copytree(args.runs, runs, ignore=shutil.ignore_patterns("*.pth"))
        with serving(str(Path(args.data).resolve()), runs) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for viewport, suffix, touch in ((DESKTOP, "", False), (PHONE, "_phone", True)):
                page = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch).new_page()
                page.set_default_timeout(120_000)
                shoot(page, url, folder, suffix)
            browser.close()


if __name__ == "__main__":
    main()
