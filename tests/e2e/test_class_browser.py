"""A class in real browsers, over HTTPS: two participants (one on a phone, tapping) and the teacher, each in their own
browser context, share one server started as a teacher would: `python -m cifar_lab serve --https --local`.

Ada trains on a desktop; Bob's run, started from a phone, waits behind hers; he may watch her run but not stop, rename
or delete it; the teacher, with the key, pauses the queue, stops Ada's run, resumes the queue, and Bob's run trains
and reaches the leaderboard. Screenshots of each context go to $CIFAR_LAB_SCREENSHOTS (kept), else to tmp_path.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_browser import BROWSER_ARGS as QUIET_BROWSER
from test_browser import CHROMIUM, ROOT

BROWSER_ARGS = [
    *QUIET_BROWSER,
    "--disable-features=AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # the browser looks up no name: it talks to 127.0.0.1
]
TEACHER_KEY = "class-key-for-the-browser-test"
TIMEOUT_MS = 60_000  # training shares 2 cores with the browser and the server
# A redraw between the two steps of one gesture (open a select box's list, show a table's toolbar) can undo the
# first step: the gesture is made again, at most GESTURE_TRIES times, each second step given GESTURE_MS.
GESTURE_MS, GESTURE_TRIES = 10_000, 3
SHOT_WAIT_MS = 5_000  # how long a screenshot waits for the page to finish drawing
LONG_EPOCHS = 1000  # Ada's run: the most the form allows, so it still trains when the teacher stops it
SHORT_EPOCHS = 1  # Bob's run: done within seconds once it starts
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
CERT = Path("cache") / "cifar_lab" / "tls" / "cert.pem"  # where serve --https makes it, below XDG_CACHE_HOME
# Chromium's file picker is a native dialog a headless browser cannot answer; without it (as on phones) a table's
# "Download as CSV" is an ordinary download, which is how the test reads a table Streamlit draws on a canvas.
NO_FILE_PICKER = "delete Window.prototype.showSaveFilePicker; delete window.showSaveFilePicker;"

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
pytest.importorskip("cryptography", reason="serve --https makes its certificate with cryptography")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, cert: Path, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until the server answers its health check over HTTPS with the certificate it made (and trusting only that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log.read_text()}")
        try:
            context = ssl.create_default_context(cafile=cert)
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2, context=context) as reply:
                if reply.read().strip() == b"ok":
                    return
        except (OSError, ssl.SSLError):  # the certificate not written yet, or the server not listening yet
            time.sleep(0.3)
    raise TimeoutError(f"the server did not answer at {url} within {timeout} s:\n{log.read_text()}")


@dataclass(frozen=True)
class Server:
    url: str
    cert: Path  # the self-signed certificate it made and serves


@pytest.fixture
def class_server(tmp_path):
    """`python -m cifar_lab serve --https --local` on a free port, with its own certificate, runs and key."""
    port = free_port()
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CIFAR_LAB_TEACHER_KEY": TEACHER_KEY,
        "CIFAR_LAB_DATA": "synthetic",
        "CIFAR_LAB_RUNS": str(tmp_path / "runs"),
        "CIFAR_LAB_RUNS_DB": str(tmp_path / "runs" / "cifar_lab.db"),
        "CIFAR_LAB_MODELS": str(tmp_path / "models"),  # no model yet: the class trains its own
    }
    cmd = [sys.executable, "-m", "cifar_lab", "serve", "--https", "--local", "--port", str(port)]
    log = tmp_path / "server.log"  # a file, not a pipe: a pipe nobody reads would block a chatty server
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_healthy(url, tmp_path / CERT, proc, log)
        yield Server(url, tmp_path / CERT)
    finally:
        proc.terminate()  # serve execs Streamlit: the process started is the server
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log.read_text()[-4000:])  # shown by pytest when the test fails


def spki_sha256(cert: Path) -> str:
    """The base64 SHA-256 of the certificate's public key, as Chromium's --ignore-certificate-errors-spki-list takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser(class_server):
    """Chromium that accepts the server's self-signed certificate, by its key, and no other certificate error.

    Not Playwright's ignore_https_errors: that accepts the certificate per request, and here a request for a page's
    late-loaded script or style sheet sometimes went round that loop until Chromium gave up (net::ERR_TOO_MANY_RETRIES;
    the page then showed "Unable to preload CSS"). A phone's "Proceed" instead allows the certificate for the site.
    """
    trust = f"--ignore-certificate-errors-spki-list={spki_sha256(class_server.cert)}"
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=[*BROWSER_ARGS, trust])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots(tmp_path):
    """shots(tab, name): a screenshot of what `tab` shows now, into $CIFAR_LAB_SCREENSHOTS or tmp_path."""
    folder = Path(os.environ.get("CIFAR_LAB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shot(tab, name: str) -> None:
        with contextlib.suppress(sync_api.TimeoutError):  # a page stuck mid-run is worth a picture too
            idle(tab, timeout=SHOT_WAIT_MS)
            tab.get_by_test_id("stSkeleton").first.wait_for(state="detached", timeout=SHOT_WAIT_MS)  # drawn whole
        tab.screenshot(path=folder / f"{name}.png")

    return shot


@dataclass
class Person:
    """One person's browser context and tab: a phone taps where a desktop clicks."""

    who: str
    tab: Any
    touch: bool = False

    def press(self, locator, timeout: float | None = None) -> None:
        """Once no rerun is under way: one that ends between the press and the release moves what was pressed."""
        idle(self.tab)
        if self.touch:
            locator.tap(timeout=timeout)
        else:
            locator.click(timeout=timeout)

    def choose(self, label: str, option: str | re.Pattern) -> None:
        """Pick `option` in the select box `label`, opening it again if a redraw closed it meanwhile."""
        wanted = self.tab.get_by_role("option", name=option, exact=isinstance(option, str))
        for tries_left in reversed(range(GESTURE_TRIES)):
            self.press(self.tab.get_by_label(label, exact=True))
            try:
                self.press(wanted, timeout=GESTURE_MS)
                return
            except sync_api.TimeoutError:
                if not tries_left:
                    raise

    def text(self, text: str | re.Pattern):
        return self.tab.get_by_text(text).first

    def button(self, name: str | re.Pattern):
        """A button the page drew (Streamlit's toolbar shows a "Stop" of its own while a rerun is under way)."""
        return self.tab.get_by_test_id("stButton").get_by_role("button", name=name, exact=isinstance(name, str))


def join(browser, who: str, url: str, context: dict) -> Person:
    """A new browser context (a person of its own) showing `url`, which must really come over HTTPS."""
    browser_context = browser.new_context(**context)
    browser_context.add_init_script(NO_FILE_PICKER)
    tab = browser_context.new_page()
    # shown by pytest when the test fails: a page's script error, a request the browser gave up on
    tab.on("pageerror", lambda error: print(f"{who}: page error {error}"))
    tab.on("requestfailed", lambda request: print(f"{who}: request failed {request.url} {request.failure}"))
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(url)
    assert tab.url.startswith("https://127.0.0.1:")
    assert tab.evaluate("() => location.protocol") == "https:" and tab.evaluate("() => window.isSecureContext")
    return Person(who, tab, touch=bool(context.get("has_touch")))


def table(person: Person, nth: int = 0) -> list[dict[str, str]]:
    """The rows of the page's nth table, as its "Download as CSV" button gives them."""
    frame = person.tab.get_by_test_id("stDataFrame").nth(nth)
    for tries_left in reversed(range(GESTURE_TRIES)):
        idle(person.tab)
        if person.touch:  # a tap on the last row's first cell shows the toolbar (one on a header would sort)
            box = frame.bounding_box()
            frame.tap(position={"x": 20, "y": box["height"] - 15})
        else:
            frame.hover()
        try:
            with person.tab.expect_download(timeout=GESTURE_MS) as download:
                button = frame.get_by_role("button", name="Download as CSV")
                (button.tap if person.touch else button.click)(timeout=GESTURE_MS)
            break
        except sync_api.TimeoutError:
            if not tries_left:
                raise
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def idle(tab, timeout: float | None = None) -> None:
    """Until the page's script (or one of its fragments) has run and is not running: the state Streamlit's own
    browser tests wait for ("initial" before the first run, so a page just opened is not idle yet)."""
    tab.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(state="attached", timeout=timeout)


def fits_width(tab) -> bool:
    """Whether the page fits the screen's width (a wide table scrolls inside its own frame)."""
    return tab.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def wait_for_value(tab, label: str, value: str) -> None:
    """Until the input labelled `label` (shown or not: a phone's sidebar is folded away) holds `value`."""
    tab.wait_for_function(
        "([label, value]) => document.querySelector(`input[aria-label='${label}']`)?.value === value",
        arg=[label, value],
    )


def set_number(person: Person, label: str, value: int) -> None:
    box = person.tab.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def start_run(person: Person, epochs: int) -> None:
    """Fill the Train form with a tiny cnn on one thread (the browser and the server keep the other core), press
    Start."""
    tab = person.tab
    person.choose("Preset", "improved")
    wait_for_value(tab, "batch size", "128")  # the preset has reached the form
    params = tab.get_by_test_id("stMetric").filter(has_text="Parameters").inner_text()
    set_number(person, "Epochs", epochs)
    person.press(tab.get_by_text("Advanced settings", exact=True))  # threads and width are a student's second layer
    set_number(person, "threads", 1)
    set_number(person, "Network width", 8)  # last: once the parameter count changes, the server has every value typed
    tab.wait_for_function(
        "old => [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".some(m => m.innerText.includes('Parameters') && m.innerText !== old)",
        arg=params,
    )
    idle(tab)
    person.press(person.button("Start training"))


def ada_trains(ada: Person, shots) -> str:
    """Ada starts a long run and watches it; returns its run id."""
    ada.text("Multiply-adds per image").wait_for()
    start_run(ada, LONG_EPOCHS)
    ada.text(f"/{LONG_EPOCHS}, step").wait_for()
    heading = ada.tab.get_by_role("heading", name=re.compile(r"^Run (Ada · .*|.* by Ada) \(")).inner_text()
    expect(ada.button("Stop")).to_be_visible()  # her own run: she may stop it
    shots(ada.tab, "1-ada-training")
    return re.search(r"\((\S+)\)$", heading).group(1)


def bob_joins(bob: Person, shots) -> None:
    """Bob's name, given in the URL, fills the sidebar field and survives a reload."""
    wait_for_value(bob.tab, "Your name", "Bob")
    bob.tab.reload()
    wait_for_value(bob.tab, "Your name", "Bob")
    assert "name=Bob" in bob.tab.url
    shots(bob.tab, "2-bob-home")


def bob_queues(bob: Person, url: str, shots) -> None:
    """Bob watches Ada's run without a Stop button; his own run waits behind it; he takes it out and queues again."""
    bob.tab.goto(f"{url}/Train?name=Bob")
    bob.tab.get_by_role("heading", name=re.compile(r"^Run (Ada · .*|.* by Ada) \(")).wait_for()
    bob.text(f"/{LONG_EPOCHS}, step").wait_for()
    idle(bob.tab)  # the redraw that drew the heading is over: a Stop button for her run would be there by now
    assert bob.button("Stop").count() == 0
    assert fits_width(bob.tab)
    shots(bob.tab, "3-bob-sees-ada")
    start_run(bob, SHORT_EPOCHS)
    bob.text("Waiting to train (1)").wait_for()
    shots(bob.tab, "4-bob-pressed-start")  # what the phone shows where Bob pressed Start
    [queued] = table(bob)
    assert queued["owner"] == "Bob" and queued["epochs"] == str(SHORT_EPOCHS)
    assert re.fullmatch(r"in about \d+ min|next|not known yet|when the teacher resumes the queue", queued["starts"]), (
        queued
    )
    shots(bob.tab, "5-bob-queued")
    bob.press(bob.button(re.compile(r"^Take .* out of the queue$")))
    bob.text("Waiting to train").wait_for(state="detached")
    bob.press(bob.button("Start training"))
    bob.text("Waiting to train (1)").wait_for()


def bob_may_change_only_his_runs(bob: Person, url: str, ada_run: str, shots) -> None:
    """On the Runs page Ada's running run is out of Bob's reach, with the reason; his own queued run is not."""
    bob.tab.goto(f"{url}/Runs?name=Bob")
    bob.choose("Run", re.compile(re.escape(f"({ada_run})")))
    bob.text("running · started by Ada").wait_for()
    idle(bob.tab)
    for name in ("Rename", "Stop it", "Delete this run..."):
        expect(bob.button(name)).to_be_disabled()
    assert fits_width(bob.tab)
    shots(bob.tab, "6-bob-runs-page")
    bob.choose("Run", re.compile(r"^Bob · "))  # runs are named after their owner
    bob.text("queued · started by Bob").wait_for()
    idle(bob.tab)
    expect(bob.button("Take it out of the queue")).to_be_enabled()
    expect(bob.button("Rename")).to_be_enabled()


def teacher_takes_charge(teacher: Person, shots) -> None:
    """The key makes a teacher, who sees the queue with Bob's run and pauses it."""
    teacher.text("listens on 127.0.0.1 only").wait_for()  # --local: no one else can join, so no QR code to scan
    assert teacher.tab.get_by_test_id("stImage").count() == 0
    key = teacher.tab.get_by_label("Teacher key", exact=True)
    idle(teacher.tab)  # on the server machine, but with CIFAR_LAB_TEACHER_KEY set only the key makes a teacher
    assert teacher.button("Pause the queue").count() == 0
    key.fill("a guess")
    key.press("Enter")
    teacher.text("That is not the teacher key.").wait_for()
    key.fill(TEACHER_KEY)
    key.press("Enter")
    teacher.button("Pause the queue").wait_for()
    teacher.text("You are the teacher").wait_for()
    teacher.text("Queue (1)").wait_for()
    assert [row["owner"] for row in table(teacher)] == ["Bob"]
    shots(teacher.tab, "7-teacher-controls")
    teacher.press(teacher.button("Pause the queue"))
    teacher.text("Paused.").wait_for()
    teacher.text("Queue (1) · paused by the teacher").wait_for()


def test_two_participants_and_the_teacher_share_a_class_over_https(class_server, browser, shots):
    url = class_server.url
    ada = join(browser, "ada", f"{url}/Train?name=Ada", DESKTOP)
    bob = join(browser, "bob", f"{url}/?name=Bob", PHONE)
    teacher = join(browser, "teacher", f"{url}/Class", DESKTOP)
    try:
        ada_run = ada_trains(ada, shots)
        bob_joins(bob, shots)
        bob_queues(bob, url, shots)
        bob_may_change_only_his_runs(bob, url, ada_run, shots)
        teacher_takes_charge(teacher, shots)
        bob.tab.goto(f"{url}/Train?name=Bob")
        bob.text("the teacher has paused the queue").wait_for()

        teacher.press(teacher.button(re.compile(r"^Stop .* \(Ada\)$")))  # not her run, but the teacher's to stop
        teacher.text("Nothing is training").wait_for()  # and the paused queue starts nothing
        ada.text("Stopped: kept the checkpoint of epoch").wait_for()
        shots(ada.tab, "8-ada-stopped")

        teacher.press(teacher.button("Resume the queue"))
        teacher.text(re.compile(r"by Bob: (running|completed)")).wait_for()
        teacher.text("Finished runs appear here").wait_for(state="detached")
        assert [row["owner"] for row in table(teacher, -1)] == ["Bob"]  # the leaderboard, the page's last table
        shots(teacher.tab, "8-teacher-leaderboard")
        bob.tab.goto(f"{url}/Train?name=Bob")
        bob.text("Finished: test accuracy").scroll_into_view_if_needed()
        shots(bob.tab, "8-bob-finished")
    finally:
        for person in (ada, bob, teacher):
            shots(person.tab, f"9-{person.who}-end")
