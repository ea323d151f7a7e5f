"""The dashboard on a phone: a 390×844 touch screen changes page with one tap, draws with a finger, reads upload limits.

Drives Debian's Chromium like test_browser.py (whose server fixture it shares), with Chromium's mobile emulation:
touch events, a narrow viewport and a phone's user agent.
"""

from __future__ import annotations

import pytest
from test_browser import BROWSER_ARGS, CHROMIUM, TIMEOUT_MS, sample_png, server  # noqa: F401  (server: the shared fixture)

from cifar_lab_ui.navigation import PAGES

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
TOO_LARGE = 14_200_000  # bytes: 14.2 MB as the uploader counts them off Windows (10⁶ bytes a megabyte)


@pytest.fixture
def phone():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        tab = browser.new_context(**PHONE).new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        yield tab
        browser.close()


def finger_drag(tab, points: list[tuple[float, float]]) -> None:
    """One finger pressed at the first point, moved through the others, lifted: real touch events, not a mouse."""
    cdp = tab.context.new_cdp_session(tab)
    (x, y), *rest = points
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for x, y in rest:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def stroke(tab, start: tuple[float, float], step: tuple[float, float]) -> None:
    """A 24-step finger stroke on the drawing canvas, from `start` (canvas pixels) by `step` each move."""
    canvas = tab.locator("canvas.upper-canvas")  # Fabric's canvas on top: the one that takes the pointer
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    finger_drag(tab, [(box["x"] + start[0] + step[0] * i, box["y"] + start[1] + step[1] * i) for i in range(25)])


def covered_by_sidebar(tab, locator) -> bool:
    """Whether the sidebar is what a finger would touch at the middle of `locator`."""
    box = locator.bounding_box()
    return tab.evaluate(
        "([x, y]) => !!document.elementFromPoint(x, y).closest('[data-testid=stSidebar]')",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )


MODEL_VIEW_JS = (
    "([...document.querySelectorAll('[data-testid=stImage]')]"
    ".find(e => e.innerText.includes('what the model sees'))?.querySelector('img')?.src ?? '')"
)


def model_view(tab) -> str:
    """The address of the picture "what the model sees"; Streamlit names a picture after its bytes."""
    return tab.evaluate(f"() => {MODEL_VIEW_JS}")


def predicted_bars(tab) -> int:
    return tab.evaluate(
        "() => { const c = document.querySelector('.js-plotly-plot'); return c ? c.data[0].y.length : 0 }"
    )


def test_a_phone_changes_page_in_one_tap_draws_with_a_finger_and_reads_the_upload_limit(server, phone):
    tab = phone
    tab.goto(server)
    tab.get_by_role("heading", name="CIFAR-10 Lab").wait_for()
    main, sidebar = tab.get_by_test_id("stMain"), tab.get_by_test_id("stSidebar")
    sync_api.expect(main.get_by_test_id("stPageLink").nth(len(PAGES) - 1)).to_be_visible()
    assert [link.inner_text() for link in main.get_by_test_id("stPageLink").all()][: len(PAGES)] == [
        label for _, label in PAGES
    ]
    assert not any(link.is_visible() for link in sidebar.get_by_test_id("stPageLink").all())  # no two ways

    main.get_by_role("link", name="Classify", exact=True).tap()
    title = tab.get_by_role("heading", name="Classify")
    title.wait_for()
    tab.wait_for_timeout(500)  # an opening sidebar slides in: give it the time to, were it to
    assert sidebar.get_attribute("data-collapsed") == "true" and not covered_by_sidebar(tab, title)

    uploader = tab.get_by_test_id("stFileUploader")
    assert "up to 10 MB" in uploader.get_by_test_id("stWidgetLabel").inner_text()
    tab.locator("input[type=file]").set_input_files(
        files=[{"name": "holiday.png", "mimeType": "image/png", "buffer": bytes(TOO_LARGE)}]
    )
    refusal = tab.get_by_text("That file is 14.2 MB; the lab accepts up to 10 MB.")
    refusal.wait_for()
    uploader.get_by_role("button", name="Remove holiday.png").tap()
    tab.locator("input[type=file]").set_input_files(
        files=[{"name": "small.png", "mimeType": "image/png", "buffer": sample_png()}]
    )
    tab.locator(".js-plotly-plot").first.wait_for()
    refusal.wait_for(state="detached")  # a file within the limit takes the sentence away

    tab.get_by_role("radio", name="Draw").tap()
    tab.locator("canvas.upper-canvas").wait_for()
    tab.locator(".js-plotly-plot").first.wait_for(state="detached")  # no prediction before a stroke
    stroke(tab, (40, 40), (7, 7))
    tab.locator(".js-plotly-plot").first.wait_for()
    assert predicted_bars(tab) == 3  # the canvas sent the drawing and the model classified it
    one_stroke = model_view(tab)
    stroke(tab, (200, 40), (-6, 8))
    tab.wait_for_function(f"() => ({MODEL_VIEW_JS}) !== {one_stroke!r}")
    undo = tab.get_by_test_id("stButton").get_by_role("button", name="Undo stroke")
    undo.tap()
    tab.wait_for_function(f"() => ({MODEL_VIEW_JS}) === {one_stroke!r}")  # the model sees the first stroke again
    tab.get_by_role("radio", name="Upload").tap()
    tab.get_by_test_id("stFileUploader").wait_for()
    tab.get_by_role("radio", name="Draw").tap()
    sync_api.expect(undo).to_be_disabled()  # the canvas comes back blank, and so does what the model sees
    assert tab.locator(".js-plotly-plot").count() == 0
    stroke(tab, (40, 200), (8, -3))
    sync_api.expect(undo).to_be_enabled()
    tab.locator(".js-plotly-plot").first.wait_for()
    tab.get_by_test_id("stButton").get_by_role("button", name="Clear drawing").tap()
    tab.locator(".js-plotly-plot").first.wait_for(state="detached")
    sync_api.expect(undo).to_be_disabled()


FITS_JS = "() => document.documentElement.scrollWidth <= window.innerWidth"  # no sideways scrolling


def outside_the_screen(tab, selector: str) -> list[str]:
    """What of `selector`'s elements sticks out of the screen sideways, by what it shows."""
    return tab.evaluate(
        "s => [...document.querySelectorAll(s)].filter(e => { const r = e.getBoundingClientRect();"
        " return r.width > 0 && (r.left < -1 || r.right > window.innerWidth + 1); })"
        ".map(e => (e.innerText || e.getAttribute('alt') || e.tagName).slice(0, 60))",
        selector,
    )


CROWDED_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].some(plot => {
    const overlap = (x, y) => {
        if (!x || !y) return false;
        const a = x.getBoundingClientRect(), b = y.getBoundingClientRect();
        return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    };
    const one = s => plot.querySelector(s), bar = one('.modebar'), legend = one('.legend');
    return overlap(legend, bar) || overlap(one('.gtitle'), bar) || overlap(legend, one('.xtitle'));
})"""  # a chart's legend or title under its toolbar, or its legend over the x axis's title


def test_train_and_runs_on_a_phone_fit_the_screen_and_show_the_run_and_its_insides_live(server, phone):
    tab = phone
    tab.goto(f"{server}/Train?name=Bob")
    tab.get_by_text("Multiply-adds per image").first.wait_for()
    assert tab.evaluate(FITS_JS)
    # A short VGG-style run that outlasts the test on any CPU (see test_browser.py); the test stops it.
    tab.get_by_label("Preset", exact=True).tap()
    tab.get_by_role("option", name="improved", exact=True).tap()
    tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    epochs = tab.get_by_label("Epochs", exact=True)
    epochs.fill("500")
    epochs.press("Enter")
    tab.wait_for_timeout(1000)
    tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    tab.get_by_role("button", name="Start training").tap()
    tab.get_by_text("Inside the network after epoch", exact=False).first.wait_for()
    tab.locator(".js-plotly-plot").nth(1).wait_for()

    assert tab.evaluate(FITS_JS), "the Train page scrolls sideways on a phone"
    assert outside_the_screen(tab, ".js-plotly-plot, [data-testid=stImage] img, [data-testid=stButton]") == []
    assert not tab.evaluate(CROWDED_JS)
    pictures = tab.get_by_test_id("stImage")
    assert pictures.filter(has_text="a test image:").count() == 1
    assert pictures.filter(has_text="filters of the first layer").count() == 1
    assert pictures.filter(has_text="first block:").count() == 1
    tab.get_by_text("The network says", exact=False).first.wait_for()
    tab.get_by_test_id("stButton").get_by_role("button", name="Stop", exact=True).tap()
    tab.get_by_text("Stopped: kept the checkpoint of epoch").wait_for()

    # The run on Runs: its comparison charts as crowded-free as Train's, and the page no wider than the screen.
    tab.goto(f"{server}/Runs")
    tab.get_by_test_id("stDataFrame").first.wait_for()
    tab.locator(".js-plotly-plot").nth(1).wait_for()
    assert tab.evaluate(FITS_JS) and not tab.evaluate(CROWDED_JS)


def test_classify_on_a_phone_fits_the_screen_with_all_ten_classes_open(server, phone):
    tab = phone
    tab.goto(f"{server}/Classify")
    tab.get_by_role("radio", name="Draw").tap()
    tab.locator("canvas.upper-canvas").wait_for()
    stroke(tab, (40, 40), (7, 7))
    tab.locator(".js-plotly-plot").first.wait_for()
    tab.get_by_text("All 10 classes").tap()
    tab.locator(".js-plotly-plot").nth(1).wait_for()
    tab.wait_for_function("() => document.querySelectorAll('.js-plotly-plot')[1].data[0].y.length === 10")
    assert tab.evaluate(FITS_JS), "the Classify page scrolls sideways on a phone"
    assert outside_the_screen(tab, ".js-plotly-plot, [data-testid=stImage] img, canvas.upper-canvas") == []
    assert not tab.evaluate(CROWDED_JS)
