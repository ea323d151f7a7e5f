"""The README's screenshots (docs/*.png), taken in Chromium from a dashboard serving real CIFAR-10.

    .venv/bin/python scripts/screenshots.py --data ../shared/data/cifar10-jpeg

Evaluate, Classify and Explain show the shipped model (a fresh runs folder, so no model of the user's is current);
Classify gets a test picture enlarged as a phone photo would be. Train shows the classroom preset during its
second epoch, when both charts have something to show; the run is then stopped. With `--only class`, the Class page
(docs/class.png) once a few participants' short classroom runs have finished, one trains and others wait; that
server listens on every address so that the page shows a join address and its QR code (the browser still connects
to 127.0.0.1). Needs /usr/bin/chromium and Playwright (both installed by scripts/test.sh).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from playwright.sync_api import FilePayload, Page, ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the cifar_lab next to this script, installed or not

from cifar_lab import run_queue  # noqa: E402
from cifar_lab.config import preset  # noqa: E402
from cifar_lab.runs import RunStore  # noqa: E402

VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
WAIT_MS = 600_000  # the Train shot waits for an epoch of real CIFAR-10, minutes on a 2-core CPU


def start_server(data: str, runs: Path, address: str = "127.0.0.1", app: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """A dashboard on a free port; `app`: the checkout whose dashboard.py it serves (another version, to compare)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "CIFAR_LAB_DATA": data,
        "CIFAR_LAB_RUNS": str(runs),
        "CIFAR_LAB_RUNS_DB": str(runs / "cifar_lab.db"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            address,
        ],
        cwd=app,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the dashboard did not start within a minute")


@contextmanager
def serving(data: str, runs: Path, address: str = "127.0.0.1", app: Path = ROOT) -> Iterator[str]:
    """A dashboard for the length of the block (see start_server); yields its address."""
    server, url = start_server(data, runs, address, app)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(10)


def settle(page: Page) -> None:
    """Wait until the page's script run has finished and the charts have drawn."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.wait_for_timeout(1500)


def save(page: Page, folder: Path, name: str) -> None:
    page.locator("h1").first.scroll_into_view_if_needed()
    page.screenshot(path=str(folder / f"{name}.png"))
    print(f"saved {folder / name}.png")


def phone_photo(data: Path) -> bytes:
    """The first test cat, enlarged to 256x256 pixels."""
    picture = Image.open(sorted((data / "test" / "cat").iterdir())[0]).convert("RGB")
    buf = io.BytesIO()
    picture.resize((256, 256), Image.Resampling.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


def shoot(page: Page, url: str, data: Path, folder: Path) -> None:
    page.goto(f"{url}/Evaluate")
    page.get_by_text("Misclassified", exact=True).wait_for()
    settle(page)
    save(page, folder, "evaluate")

    page.goto(f"{url}/Classify")
    page.locator("input[type=file]").set_input_files(
        files=[FilePayload(name="cat.png", mimeType="image/png", buffer=phone_photo(data))]
    )
    page.get_by_text("what the model sees").first.wait_for()
    settle(page)
    save(page, folder, "classify")

    page.goto(f"{url}/Explain")
    page.get_by_text("Test image", exact=True).click()
    page.get_by_text("Grad-CAM").first.wait_for()
    settle(page)
    save(page, folder, "explain")

    page.goto(f"{url}/Train?name=Ada")
    page.get_by_label("Preset", exact=True).click()
    page.get_by_role("option", name="classroom", exact=True).click()
    settle(page)  # the preset reaches the form in a rerun; a click during it could be lost
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("epoch 2/", exact=False).first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(20_000)  # some of epoch 2 in the loss chart
    save(page, folder, "train")
    page.get_by_role("button", name="Stop").click()


# Participants and their changes to the classroom preset: short runs, so that the board fills in minutes.
CLASS_RUNS = (
    ("Ada", {"epochs": 1}),
    ("Bilal", {"epochs": 1, "lr": 1.0}),
    ("Chen", {"epochs": 1, "width": 24}),
    ("Dana", {"epochs": 2}),
    ("Eli", {"epochs": 2, "lr": 0.5}),
    ("Farah", {"epochs": 3}),
)
CLASS_VIEWPORT: ViewportSize = {"width": 1400, "height": 2600}  # the page scrolls inside: tall enough for all of it
FINISHED_FIRST = 3  # runs on the board when the shot is taken; the next trains, the others wait


def queue_class(runs: Path, data: str) -> RunStore:
    """The class's runs queued before the server starts, as a restart finds them: it trains them one by one."""
    store = RunStore(runs / "cifar_lab.db", runs_dir=runs)
    for owner, changes in CLASS_RUNS:
        config = preset("classroom", **changes)
        run_queue.enqueue(store, config, owner=owner, data_source=data, preset="classroom", limit=None)
    return store


def shoot_class(page: Page, url: str, store: RunStore, folder: Path) -> None:
    page.goto(f"{url}/Class")  # from 127.0.0.1: the teacher, who sees the controls too
    deadline = time.monotonic() + WAIT_MS / 1000 * 3
    while len(store.list_runs(status="completed")) < FINISHED_FIRST:
        if time.monotonic() > deadline:
            raise SystemExit("the class's runs did not finish in time")
        time.sleep(5)
    page.reload()
    page.get_by_text("What mattered").wait_for()
    settle(page)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(folder / "class.png"), full_page=True)
    print(f"saved {folder / 'class.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder of train/ and test/ class folders (JPEG copy)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go (default: docs/)")
    parser.add_argument("--only", choices=["pages", "class"], help="just the page shots, or just the Class page")
    args = parser.parse_args()
    data, folder = Path(args.data).resolve(), Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for part in [args.only] if args.only else ["pages", "class"]:
        with tempfile.TemporaryDirectory() as runs:
            store = queue_class(Path(runs), str(data)) if part == "class" else None
            take(part, data, Path(runs), folder, store)


def take(part: str, data: Path, runs: Path, folder: Path, store: RunStore | None) -> None:
    with serving(str(data), runs, "0.0.0.0" if store is not None else "127.0.0.1") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(viewport=VIEWPORT if store is None else CLASS_VIEWPORT).new_page()
        page.set_default_timeout(120_000)
        if store is not None:
            shoot_class(page, url, store, folder)
        else:
            shoot(page, url, data, folder)
        browser.close()


if __name__ == "__main__":
    main()
