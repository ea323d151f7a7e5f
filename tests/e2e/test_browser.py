"""The dashboard in a real browser: start a synthetic run, watch it, stop it, evaluate, classify an upload.

Runs `streamlit run dashboard.py` on a free localhost port and drives Debian's Chromium (/usr/bin/chromium)
through Playwright; no browser is downloaded. (The README's screenshots come from scripts/screenshots.py.)
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from cifar_lab.data import synthetic_data

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000  # training shares 2 cores with the browser and the server
EPOCHS = 500

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "CIFAR_LAB_DATA": "synthetic",
        "CIFAR_LAB_RUNS": str(tmp_path / "runs"),
        "CIFAR_LAB_RUNS_DB": str(tmp_path / "runs" / "cifar_lab.db"),
    }
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "dashboard.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    log = tmp_path / "streamlit.log"  # a file, not a pipe: a pipe nobody reads would block a chatty server
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(log.read_text()[-4000:])  # shown by pytest when the test fails


@pytest.fixture
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        yield tab
        browser.close()


def sample_png() -> bytes:
    """A test image of the synthetic data set, enlarged as a phone photo would be."""
    pixels = synthetic_data(n_train=10, n_test=10).test_x[3].permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((160, 160), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def chart_points(tab, nth: int) -> int:
    """Points in the first trace of the page's nth plotly chart; 0 before it exists."""
    # _fullData holds the decoded arrays (data may still hold numpy's base64 form).
    return tab.evaluate(
        "n => { const c = document.querySelectorAll('.js-plotly-plot')[n];"
        " return c && c._fullData && c._fullData.length ? c._fullData[0].x.length : 0; }",
        nth,
    )


def loss_points(tab) -> int:
    """Points in the live loss chart (the first plotly chart on the Train page)."""
    return chart_points(tab, 0)


def epochs_done(tab, n: int) -> bool:
    """The progress line reads epoch n + 1 or later, so n epochs have finished (and been saved)."""
    text = tab.get_by_text(f"/{EPOCHS}, step", exact=False).first.inner_text()
    return int(text.split("epoch ", 1)[1].split("/", 1)[0]) > n


def accuracy_points(tab) -> int:
    """Finished epochs in the live accuracy chart (the second plotly chart on the Train page)."""
    return chart_points(tab, 1)


def click_confusion_cell(tab, *, row: int, col: int, classes: int = 10) -> None:
    """Click the centre of one cell of the confusion matrix (the second plotly chart on Evaluate)."""
    chart = tab.locator(".js-plotly-plot").nth(1)
    chart.scroll_into_view_if_needed()
    area = chart.locator(".nsewdrag").first.bounding_box()  # the plotting area, axes excluded
    tab.mouse.click(
        area["x"] + area["width"] * (col + 0.5) / classes, area["y"] + area["height"] * (row + 0.5) / classes
    )


def choose(tab, label: str, option: str) -> None:
    tab.get_by_label(label, exact=True).click()
    tab.get_by_role("option", name=option, exact=True).click()


def wait_for_value(tab, label: str, value: str) -> None:
    tab.wait_for_function(
        "([label, value]) => { const e = document.querySelector(`input[aria-label='${label}']`);"
        " return e && e.value === value; }",
        arg=[label, value],
    )


def set_number(tab, label: str, value: int) -> None:
    box = tab.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def test_train_evaluate_classify_in_a_real_browser(server, page):
    # A fresh server's first visitor, not on Home: Streamlit's own list would show. ?name=: runs need a name.
    page.goto(f"{server}/Train?name=Ada")
    page.get_by_text("Multiply-adds per image").first.wait_for()
    # From 127.0.0.1, with no CIFAR_LAB_TEACHER_KEY set: the person at the server machine is the teacher.
    page.get_by_test_id("stSidebar").get_by_text("You are the teacher").wait_for()
    assert page.get_by_test_id("stSidebarNav").count() == 0
    assert not page.get_by_test_id("stMain").get_by_test_id("stPageLink").first.is_visible()  # a phone's row only
    assert page.get_by_test_id("stSidebar").get_by_test_id("stPageLink").all_inner_texts() == [
        "Home",
        "Data",
        "Train",
        "Evaluate",
        "Classify",
        "Models",
        "Runs",
        "Explain",
        "Class",
        "Guide",
        "Sweep",
    ]
    # A VGG-style net, 16 steps per epoch here, for more epochs than any machine finishes while the test watches:
    # how long it runs must not depend on the CPU's speed (a fast one finished 4 epochs before the page's first
    # redraw, every ui_state.CPU_LIVE_REFRESH_S seconds on a CPU). The test watches the curve grow, then stops it.
    choose(page, "Preset", "improved")
    wait_for_value(page, "batch size", "128")  # the preset has reached the form
    set_number(page, "Epochs", EPOCHS)
    wait_for_value(page, "Epochs", str(EPOCHS))
    page.wait_for_timeout(1000)  # the rerun that the new value started is under way (and shown) by now
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")  # and done
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(f"/{EPOCHS}, step", exact=False).first.wait_for()

    seen = []  # loss-chart sizes observed while the run is in progress
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    # Two finished epochs (a checkpoint to evaluate), read from the progress line as well as the chart: while a
    # redraw is under way the page can briefly hold a stale copy of the charts.
    while len(seen) < 3 or accuracy_points(page) < 2 or not epochs_done(page, 2):
        assert time.monotonic() < deadline, f"the charts did not grow in time (loss chart sizes seen: {seen})"
        n = loss_points(page)
        if n and (not seen or n > seen[-1]):
            seen.append(n)
        page.wait_for_timeout(300)
    # The page's own Stop button; Streamlit's toolbar shows another "Stop" while a rerun is under way.
    page.get_by_test_id("stButton").get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("Stopped: kept the checkpoint of epoch").wait_for()
    assert loss_points(page) >= seen[-1]

    page.goto(f"{server}/Evaluate")
    page.get_by_text("Test accuracy").first.wait_for()
    page.get_by_text("Misclassified", exact=True).wait_for()
    click_confusion_cell(page, row=2, col=3)  # true bird, predicted cat
    # both filters come from one rerun, but the browser draws them one after the other: wait for each
    wait_for_value(page, "True class", "bird")
    wait_for_value(page, "Predicted class", "cat")

    page.goto(f"{server}/Classify")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "sample.png", "mimeType": "image/png", "buffer": sample_png()}]
    )
    page.get_by_text("what the model sees").first.wait_for()  # the explain panel repeats it
    page.locator(".js-plotly-plot").first.wait_for()
    bars = page.evaluate("() => document.querySelector('.js-plotly-plot').data[0].y")
    assert len(bars) == 3
