"""Training images/s of one config from the command line and from the dashboard with a real browser watching it.

    python benchmarks/dashboard_browser.py                         # classroom's recipe on ../shared/data/cifar10-jpeg
    python benchmarks/dashboard_browser.py --pairs 3 --json benchmarks/results/dashboard_browser.json
    python benchmarks/dashboard_browser.py --data synthetic --epochs 1 --pairs 1   # a quick try

Each pair trains the same config twice, one after the other, alternating which goes first: `python -m cifar_lab
train ... --json` in a process of its own, and `streamlit run dashboard.py` on a free 127.0.0.1 port where one
headless Chromium (Playwright) opens the Train page, sets the epochs, presses Start and watches the live charts until
the run finishes. The dashboard's figure is the run store's `images_per_s`, which the CLI prints from the same
TrainingRun. The config is the preset's recipe with its time budget off (`--minutes 0`): a budget would make each
path choose its own run. The browser runs on the same cores and its share of the CPU counts against the dashboard,
as it would on a teacher's laptop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.class_load import BROWSER_ARGS, CHROMIUM, DEFAULT_DATA  # noqa: E402
from benchmarks.class_load_setup import Server, load_average, machine  # noqa: E402
from cifar_lab.config import preset  # noqa: E402
from cifar_lab.runs import RunStore  # noqa: E402

RUN_TIMEOUT_MS = 30 * 60_000


def cli_rate(preset_name: str, epochs: int, data: str, folder: Path) -> float:
    """images/s of `python -m cifar_lab train` for the recipe, from its --json line."""
    cmd = [sys.executable, "-m", "cifar_lab", "train", "--preset", preset_name, "--minutes", "0"]
    cmd += ["--epochs", str(epochs), "--data", data, "--out", str(folder), "--name", "cli", "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the CLI run failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"])


async def set_number(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    await box.fill(value)
    await box.press("Enter")
    await page.wait_for_function(
        "([label, v]) => { const e = document.querySelector(`input[aria-label='${label}']`); return e && "
        "e.value === v; }",
        arg=[label, value],
    )
    await page.wait_for_timeout(500)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


async def watch_a_run(url: str, preset_name: str, epochs: int, watch: bool = True) -> None:
    """A headless Chromium starts the run on the Train page and keeps it open, redrawing, until it finishes; with
    watch=False it closes once the run trains (how much of the cost is the watching)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
        page.set_default_timeout(120_000)
        await page.goto(f"{url}/Train?name=bench")
        await page.get_by_text("Multiply-adds per image").first.wait_for()
        await page.get_by_role("combobox", name="Preset").click()
        await page.get_by_role("option", name=preset_name, exact=True).click()
        await page.wait_for_timeout(500)
        await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
        await set_number(page, "Time budget (minutes)", "0")
        await set_number(page, "Epochs", str(epochs))
        await page.get_by_role("button", name="Start training").click()
        await page.get_by_text(f"/{epochs}, step", exact=False).first.wait_for()
        if watch:
            await page.get_by_text("Finished", exact=False).first.wait_for(timeout=RUN_TIMEOUT_MS)
        await browser.close()


def dashboard_rate(preset_name: str, epochs: int, data: str, folder: Path, app: Path, watch: bool = True) -> float:
    """images/s of the same recipe started and watched in the dashboard, from the run store."""
    runs = folder / "runs"
    runs.mkdir(parents=True)
    server = Server(runs, data, secrets.token_urlsafe(16), folder / "streamlit.log", app=app)
    try:
        server.wait_healthy()
        asyncio.run(watch_a_run(server.url, preset_name, epochs, watch))
        store = RunStore(runs / "cifar_lab.db")
        while store.list_runs()[0].status in ("queued", "running"):
            time.sleep(1)
    finally:
        server.stop()
    (record,) = RunStore(runs / "cifar_lab.db").list_runs()
    if record.status != "completed" or not record.metrics.get("images_per_s"):
        raise SystemExit(f"the dashboard run ended {record.status}: {record.message}")
    return float(record.metrics["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--preset", default="classroom")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's recipe")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--app", type=Path, default=ROOT, help="the checkout whose dashboard to serve")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--no-watch", action="store_true", help="close the browser once the run trains")
    args = parser.parse_args()
    epochs = args.epochs or preset(args.preset).epochs
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dashboard-browser-") as tmp:
        for pair in range(args.pairs):
            order = ("cli", "dashboard") if pair % 2 == 0 else ("dashboard", "cli")
            rates: dict[str, float] = {}
            for path in order:
                folder = Path(tmp) / f"{pair}-{path}"
                if path == "cli":
                    rates[path] = cli_rate(args.preset, epochs, args.data, folder)
                else:
                    rates[path] = dashboard_rate(args.preset, epochs, args.data, folder, args.app, not args.no_watch)
                print(f"pair {pair + 1}, {path}: {rates[path]:,.0f} images/s (load {load_average()})", flush=True)
            rows.append({"pair": pair + 1, "first": order[0], **rates, "ratio": rates["dashboard"] / rates["cli"]})
    print(f"\n{args.preset} recipe, {epochs} epochs, {args.data}; {machine()}\n")
    print("| pair | first | CLI images/s | dashboard + Chromium images/s | ratio |")
    print("|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pair']} | {r['first']} | {r['cli']:,.0f} | {r['dashboard']:,.0f} | {r['ratio']:.3f} |")
    ratios = [r["ratio"] for r in rows]
    print(f"\nmedian ratio {statistics.median(ratios):.3f} (lowest {min(ratios):.3f})")
    if args.json:
        summary = {"preset": args.preset, "epochs": epochs, "data": args.data, "machine": machine(), "pairs": rows}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
