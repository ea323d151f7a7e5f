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
