"""Screenshots of what a lesson shows, on a desktop and on a 390x844 phone, from a dashboard serving real CIFAR-10:
Train during a classroom run, Classify with a drawing, and Models refusing a .pth that is not a checkpoint.

    .venv/bin/python scripts/lesson_screenshots.py --data ../shared/data/cifar10-jpeg --out docs/lesson/after
    git worktree add /tmp/before <commit> && \
    .venv/bin/python scripts/lesson_screenshots.py --data ../shared/data/cifar10-jpeg --app /tmp/before \
        --out docs/lesson/before

`--app` serves another checkout's dashboard.py (an earlier version, to compare); the browser does the same in both.
Needs /usr/bin/chromium and Playwright (both installed by scripts/test.sh).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import FilePayload, Locator, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.screenshots import WAIT_MS, serving, settle  # noqa: E402

TALL = 3000  # pixels: the height of every viewport, so that a shot needs no scrolling (see shot)
SCREENS = {  # a desktop's and a 390x844 phone's width
    "desktop": {"viewport": {"width": 1280, "height": TALL}},
    "phone": {"viewport": {"width": 390, "height": TALL}, "is_mobile": True, "has_touch": True},
}
# A car seen from the side, in canvas pixels: body, roof, then two wheels (a stroke each).
CAR = (
    [(30, 150), (230, 150), (230, 115), (170, 110), (150, 75), (80, 75), (60, 110), (30, 115), (30, 150)],
    [(70, 150), (60, 165), (75, 180), (90, 165), (80, 150)],
    [(180, 150), (170, 165), (185, 180), (200, 165), (190, 150)],
)

CAR_BODY = ([(20, 120), (236, 175)], [(70, 80), (180, 125)])  # drags from corner to corner
CAR_WHEELS = ([(55, 170), (90, 205)], [(170, 170), (205, 205)])


def not_a_checkpoint() -> bytes:
    """A file named .pth that is no checkpoint: the start of a zip archive (as a .pth is), then nothing of one."""
    return b"PK\x03\x04 not really a checkpoint" * 40


def shot(page: Page, path: Path, top: Locator, bottom: str, *, above: Locator | None = None) -> None:
    """The page from `top` down to the lowest element matching `bottom` (CSS), or to just above `above`; stored with
    256 colours, which a page of text and charts loses nothing to. The viewport is as tall as a shot may be:
    Streamlit scrolls its page inside a container, which a full-page screenshot does not see."""
    # A click scrolls the page to its element, behind Streamlit's fixed header: back to the top first.
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    page.wait_for_timeout(300)
    start = top.first.bounding_box()
    lowest = page.evaluate(  # the bottom edge of the lowest element matching `bottom`
        "s => Math.max(...[...document.querySelectorAll(s)].map(e => e.getBoundingClientRect())"
        ".filter(r => r.height > 0).map(r => r.bottom))",
        bottom,
    )
    end = above.first.bounding_box() if above is not None else None
    assert start is not None and lowest > 0, f"{top} or {bottom!r} is not on the page"
    y = max(0, start["y"] - 16)
    height = min(end["y"] - 8 if end else lowest + 24, TALL) - y
    width = (page.viewport_size or {"width": 1280})["width"]
    png = page.screenshot(clip={"x": 0, "y": y, "width": width, "height": height})
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"saved {path}")


def draw(page: Page, strokes) -> None:
    """Mouse strokes on the drawing canvas (a phone's emulation turns them into touches the canvas takes too)."""
    canvas = page.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    assert box is not None
    scale = box["width"] / 256  # the canvas may be narrower than 256 pixels on a phone
    for points in strokes:
        (x, y), *rest = points
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=6)
        page.mouse.up()
        page.wait_for_timeout(400)


def train_shot(page: Page, url: str, folder: Path, screen: str) -> None:
    page.goto(f"{url}/Train?name=Ada")
    page.get_by_label("Preset", exact=True).click()
    page.get_by_role("option", name="classroom", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_test_id("stButton").get_by_role("button", name="Stop", exact=True).wait_for()  # this run, not the last
    page.get_by_text("epoch 2/", exact=False).first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(15_000)  # some of epoch 2 in the loss chart, and a redraw with epoch 1's insides
    # Down to the Train form under the live view: the run's charts, and its insides where the version has them.
    form = page.get_by_text("Preset", exact=True)
    shot(page, folder / f"train_{screen}.png", page.locator("h3", has_text="Run "), ".js-plotly-plot", above=form)
    page.get_by_test_id("stButton").get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("Stopped:", exact=False).first.wait_for()


def classify_shot(page: Page, url: str, folder: Path, screen: str) -> None:
    page.goto(f"{url}/Classify")
    page.get_by_role("radio", name="Draw").click()
    page.locator("canvas.upper-canvas").wait_for()
    settle(page)
    draw(page, CAR)
    page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    more = page.get_by_text("All 10 classes")
    if more.count():  # an earlier version showed the top three only
        more.first.click()
        page.locator(".js-plotly-plot").nth(1).wait_for()
        settle(page)
    shot(page, folder / f"classify_{screen}.png", page.locator("h1"), ".js-plotly-plot")
    if page.get_by_text("Filled rectangle").count():  # the drawing advice's way: filled shapes on a coloured ground
        page.get_by_role("button", name="Clear drawing").click()
        settle(page)
        for tool, strokes in (("Filled rectangle", CAR_BODY), ("Filled circle", CAR_WHEELS)):
            page.get_by_text(tool, exact=True).click()
            settle(page)
            draw(page, strokes)
        page.locator(".js-plotly-plot").first.wait_for()
        settle(page)
        shot(page, folder / f"classify_filled_{screen}.png", page.locator("h1"), ".js-plotly-plot")


def refused_shot(page: Page, url: str, folder: Path, screen: str) -> None:
    page.goto(f"{url}/Models")  # from 127.0.0.1: the teacher, who may add models
    page.locator("input[type=file]").set_input_files(
        files=[FilePayload(name="my_model.pth", mimeType="application/octet-stream", buffer=not_a_checkpoint())]
    )
    page.get_by_role("button", name="Add this model").click()
    page.get_by_test_id("stAlertContentError").first.wait_for()
    settle(page)
    upload = page.locator("h3", has_text="Upload")
    shot(page, folder / f"refused_upload_{screen}.png", upload, "[data-testid=stAlertContentError]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder of train/ and test/ class folders (JPEG copy)")
    parser.add_argument("--out", required=True, help="where the PNGs go")
    parser.add_argument("--app", default=str(ROOT), help="the checkout whose dashboard to serve (default: this one)")
    args = parser.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    data, app = str(Path(args.data).resolve()), Path(args.app).resolve()
    with tempfile.TemporaryDirectory() as runs, serving(data, Path(runs), app=app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for screen, options in SCREENS.items():
            page = browser.new_context(**options).new_page()  # type: ignore[arg-type]
            page.set_default_timeout(120_000)
            for take in (classify_shot, refused_shot, train_shot):
                take(page, url, folder, screen)
            page.context.close()
        browser.close()


if __name__ == "__main__":
    main()
