"""A class on one server: N real browsers join, watch a training run, classify a picture, open the leaderboard.

    python benchmarks/class_load.py                    # 10, then 20 sessions, on ../shared/data/cifar10-jpeg
    python benchmarks/class_load.py --sessions 10 --json benchmarks/results/class_load.json
    mkdir /tmp/old && git archive COMMIT | tar -x -C /tmp/old && python benchmarks/class_load.py --app /tmp/old

One `streamlit run dashboard.py` on a free 127.0.0.1 port (headless, a temporary runs folder holding a finished
class's leaderboard, CIFAR_LAB_TEACHER_KEY set) and Debian's Chromium driven by Playwright, one browser context per
participant; nothing leaves the loopback interface. A teacher context types the key on the Class page and starts
`classroom` with enough epochs to outlast the measurement. Then, while it trains: a window with no browser open
(the baseline), and for each N: N contexts join (Home with ?name=student-i), open Train and watch, classify an
uploaded picture, open the Class page's leaderboard and go back to Train, all at once; then every session watches
the Train page for a fixed window, and must see its progress line change. Then they close and another baseline
window follows, so that each watching window lies between two without watchers in the same run.

Timings run from the action (the click, setting the file) to its result on the page. Training images/s are the
run store's per-step rates (`steps.images_per_s`) inside each window, averaged over time (harmonic mean).

The server trains and serves in one process. Its serving CPU is told apart by thread (/proc/PID/task/*/stat): the
threads that use more than a tenth of a core in the first baseline, when nobody is connected, are training's (the
run's worker thread and its OpenMP threads); the process's CPU time beyond theirs is serving: Tornado, the script
runs of every session (new threads, which also hold the CPU time of threads that have ended), inference. The
idle serving rate of the baselines is subtracted before dividing by the watchers and the minutes. The browsers
run on the same machine and take CPU from training too; their share is reported beside it, as a class's own
devices would not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, FilePayload, Page, async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks import proc_usage  # noqa: E402
from benchmarks.class_load_setup import Server, load_average, machine, picture_png, seed_leaderboard  # noqa: E402
from cifar_lab.data import SYNTHETIC  # noqa: E402
from cifar_lab.runs import RunStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing but the loopback server resolves
]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
ACTION_TIMEOUT_MS = 60_000  # an action slower than this counts as failed
CONTEXT_MB = 250  # memory a browser context and its renderer take at most here, with the charts drawn
ACTIONS = ("join", "watch", "classify", "leaderboard")


@dataclass
class Actions:
    """Seconds per action over every session, and what failed."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ACTIONS})
    failures: list[str] = field(default_factory=list)

    async def time(self, action: str, who: str, step) -> bool:
        start = time.perf_counter()
        try:
            await step
        except Exception as err:  # a timeout or a missing element: the interaction failed
            self.failures.append(f"{who} {action}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
            return False
        self.seconds[action].append(time.perf_counter() - start)
        return True


# --- the browsers ------------------------------------------------------------------------------------------------


async def open_link(page: Page, label: str) -> None:
    """Another page through the sidebar's link: the same session (a typed key or name stays)."""
    await page.get_by_test_id("stSidebar").get_by_role("link", name=label, exact=True).click()


async def watching(page: Page, epochs: int) -> None:
    """The Train page shows the running job: its progress line and both live charts."""
    await page.get_by_text(f"/{epochs}, step", exact=False).first.wait_for()
    await page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2")


async def progress_line(page: Page, epochs: int) -> str:
    return await page.get_by_text(f"/{epochs}, step", exact=False).first.inner_text(timeout=10_000)


async def start_training(browser: Browser, url: str, key: str, epochs: int) -> bool:
    """The teacher types the key on the Class page, then starts `classroom` for `epochs` epochs on Train. Returns
    whether the Train page still knew them as the teacher (their name alone lets them start a run without caps)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    await page.goto(f"{url}/Class?name=teacher")
    await page.locator("input[type=password]").fill(key)
    await page.locator("input[type=password]").press("Enter")
    await page.get_by_text("You are the teacher").first.wait_for()
    await open_link(page, "Train")
    await page.get_by_text("Multiply-adds per image").first.wait_for()
    teacher = await page.get_by_text("You are the teacher").count() > 0
    box = page.get_by_label("Epochs", exact=True)
    await box.fill(str(epochs))
    await box.press("Enter")
    await page.wait_for_function(
        "n => { const e = document.querySelector(\"input[aria-label='Epochs']\"); return e && e.value === n; }",
        arg=str(epochs),
    )
    await page.wait_for_timeout(1000)  # the rerun the new value started is under way by now
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    await page.get_by_role("button", name="Start training").click()
    await watching(page, epochs)
    await context.close()
    return teacher


async def classify(page: Page, picture: bytes) -> None:
    photo = FilePayload(name="photo.png", mimeType="image/png", buffer=picture)
    await page.locator("input[type=file]").set_input_files(files=[photo])
    await page.get_by_text("what the model sees").first.wait_for()
    await page.wait_for_function(  # the top-3 bars: a horizontal bar chart
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(c => c.data && c.data[0].orientation === 'h')"
    )


async def leaderboard(page: Page) -> None:
    await open_link(page, "Class")
    await page.get_by_text("Leaderboard", exact=True).wait_for()
    await page.get_by_test_id("stDataFrame").last.wait_for()


async def participant(browser: Browser, url: str, i: int, data: str, epochs: int, log: Actions) -> Page:
    """One participant's visit, ending on the Train page; every action is timed, a failed one recorded."""
    who, picture = f"student-{i}", picture_png(data, i)
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)

    async def join() -> None:
        await page.goto(f"{url}/?name={who}")
        await page.get_by_role("heading", name="CIFAR-10 Lab").wait_for()

    async def train() -> None:
        await open_link(page, "Train")
        await watching(page, epochs)

    async def upload() -> None:
        await open_link(page, "Classify")
        await page.locator("input[type=file]").wait_for(state="attached")
        await log.time("classify", who, classify(page, picture))

    await log.time("join", who, join())
    await log.time("watch", who, train())
    await upload()
    await log.time("leaderboard", who, leaderboard(page))
    await log.time("watch", who, train())
    return page


# --- measuring ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stretch:
    """What was read around a stretch of training, before telling training's threads from serving's."""

    seconds: float
    before: proc_usage.CpuSample
    after: proc_usage.CpuSample
    rates: list[float]  # images/s of each training step recorded meanwhile
    browsers_cpu_s: float
    others_cpu_s: float  # what the rest of the machine used meanwhile: other work slows training too
    memory: dict[str, float]

    def window(self, training: frozenset[int]) -> dict[str, float | None]:
        trained, served = proc_usage.split(self.before, self.after, training)
        return {
            "seconds": self.seconds,
            "images_per_s": len(self.rates) / sum(1 / r for r in self.rates) if self.rates else None,
            "training_cpu_s": trained,
            "serving_cpu_s": served,
            "browsers_cpu_s": self.browsers_cpu_s,
            "others_cpu_s": self.others_cpu_s,
            "rss_mb": self.memory["VmRSS"],
            "hwm_mb": self.memory["VmHWM"],
        }


async def measure(server: Server, store: RunStore, seconds: float) -> Stretch:
    """Watch the server and the browsers for `seconds` while the run trains."""
    browsers = [p for p in proc_usage.descendants(os.getpid()) if p != server.pid]
    run_id = store.list_runs(status="running", limit=1)[0].id
    first_step = max((s.step for s in store.steps(run_id)), default=0)
    machine_before, mine_before = proc_usage.machine_cpu_s(), sum(os.times()[:2])
    before, browsers_before, t0 = proc_usage.sample(server.pid), proc_usage.processes_cpu_s(browsers), time.monotonic()
    await asyncio.sleep(seconds)
    after, browsers_after = proc_usage.sample(server.pid), proc_usage.processes_cpu_s(browsers)
    machine, mine = proc_usage.machine_cpu_s() - machine_before, sum(os.times()[:2]) - mine_before
    wall = time.monotonic() - t0
    if store.get_run(run_id).status != "running":
        raise RuntimeError("the run ended during the measurement: give it more --epochs")
    rates = [s.images_per_s for s in store.steps(run_id) if s.step > first_step and s.images_per_s > 0]
    browsers_cpu = proc_usage.cpu_between(browsers_before, browsers_after)
    others = machine - mine - browsers_cpu - (after.total_s - before.total_s)
    return Stretch(wall, before, after, rates, browsers_cpu, others, proc_usage.memory_mb(server.pid))


async def class_of(n: int, browser: Browser, server: Server, store: RunStore, args: argparse.Namespace) -> tuple:
    """N participants visit at once, then watch for args.watch_s: (their actions, the watching stretch, seconds the
    visits took)."""
    log = Actions()
    started = time.monotonic()
    visits = (participant(browser, server.url, i, args.data, args.epochs, log) for i in range(1, n + 1))
    pages = await asyncio.gather(*visits)
    visit_s = time.monotonic() - started
    lines = await asyncio.gather(*(progress_line(p, args.epochs) for p in pages), return_exceptions=True)
    profiler = await profile(args, server, n)
    stretch = await measure(server, store, args.watch_s)
    if profiler is not None:
        await profiler.wait()
    later = await asyncio.gather(*(progress_line(p, args.epochs) for p in pages), return_exceptions=True)
    for i, (a, b) in enumerate(zip(lines, later), start=1):
        if isinstance(a, BaseException) or isinstance(b, BaseException) or a == b:
            log.failures.append(f"student-{i} live update: the progress line did not change while watching")
    await asyncio.gather(*(p.context.close() for p in pages))
    return log, stretch, visit_s


async def profile(args: argparse.Namespace, server: Server, n: int) -> asyncio.subprocess.Process | None:
    """With --py-spy: the server's stacks while N sessions watch, sampled without pausing it, as collapsed stacks."""
    if not args.py_spy:
        return None
    out = Path(args.json or "class_load.json").with_suffix(f".{n}.stacks.txt")
    cmd = [args.py_spy, "record", "--pid", str(server.pid), "--duration", str(int(args.watch_s)), "--nonblocking"]
    cmd += ["--threads", "--format", "raw", "--output", str(out)]
    return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)


async def warm_up(store: RunStore, steps: int) -> None:
    """Until the run has recorded `steps` steps: its first ones allocate memory and pick kernels."""
    while True:
        running = store.list_runs(status="running", limit=1)
        if running and len(store.steps(running[0].id)) >= steps:
            return
        await asyncio.sleep(1)


async def run(args: argparse.Namespace, result: dict) -> None:
    """The whole measurement; `result` fills as it goes, so that a timeout still reports what was measured."""
    key = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="class_load-") as tmp:
        runs = Path(tmp) / "runs"
        seed_leaderboard(runs, args.board_runs)
        server = Server(runs, args.data, key, Path(tmp) / "streamlit.log", app=Path(args.app).resolve())
        try:
            server.wait_healthy()
            store = RunStore(runs / "cifar_lab.db")
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                result["teacher_on_train"] = await start_training(browser, server.url, key, args.epochs)
                await warm_up(store, args.warmup_steps)
                await levels(args, result, browser, server, store)
                await browser.close()
        finally:
            server.stop()
            if args.json:  # what the server said, e.g. why a page failed
                Path(args.json).with_suffix(".log").write_text(server.log.read_text())


async def levels(args: argparse.Namespace, result: dict, browser: Browser, server: Server, store: RunStore) -> None:
    """A baseline, then each level of sessions followed by another baseline."""
    first = await measure(server, store, args.baseline_s)
    training = proc_usage.busy_threads(first.before, first.after, first.seconds)
    result["training_threads"] = len(training)
    result["baselines"] = [first.window(training)]
    for n in args.sessions:
        free = proc_usage.available_mb()
        if free < n * CONTEXT_MB + 1000:
            result["levels"].append({"sessions": n, "skipped": f"{free:,.0f} MB free; {n} browsers need more"})
            continue
        log, stretch, visit_s = await class_of(n, browser, server, store, args)
        level = {"sessions": n, "baseline": len(result["baselines"]) - 1, "visit_s": visit_s}
        level |= {"actions": log.seconds, "failures": log.failures}
        result["levels"].append({**level, "watch": stretch.window(training)})
        result["baselines"].append((await measure(server, store, args.baseline_s)).window(training))


# --- the report --------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def summary(level: dict, before: dict, after: dict) -> dict:
    """A level's figures: failures, p50/p95 per action, serving CPU per watcher, memory, training speed."""
    watch, n = level["watch"], level["sessions"]
    idle_rate = statistics.mean(b["serving_cpu_s"] / b["seconds"] for b in (before, after))  # CPU s per s, nobody on
    per_watcher = (watch["serving_cpu_s"] - idle_rate * watch["seconds"]) / n / (watch["seconds"] / 60)
    without = [b["images_per_s"] for b in (before, after) if b["images_per_s"]]
    with_ = watch["images_per_s"]
    return {
        "failed": len(level["failures"]),
        "p50_s": {a: percentile(s, 0.5) for a, s in level["actions"].items()},
        "p95_s": {a: percentile(s, 0.95) for a, s in level["actions"].items()},
        "serving_cpu_s_per_watcher_per_min": per_watcher,
        "rss_mb": watch["rss_mb"],
        "hwm_mb": watch["hwm_mb"],
        "images_per_s_with": with_,
        "images_per_s_without": statistics.mean(without) if without else None,
        "ratio": with_ / statistics.mean(without) if with_ and without else None,
    }


def seconds_cell(p50: float | None, p95: float | None) -> str:
    return "failed" if p50 is None or p95 is None else f"{p50:.2f} / {p95:.2f}"


def report(result: dict) -> None:
    """Two Markdown tables: each level of sessions, then every measured window."""
    print(
        f"\n| sessions | failed | {' | '.join(f'{a} p50 / p95 (s)' for a in ACTIONS)} | server CPU per watcher "
        "| server RSS (peak) | training images/s with / without sessions |"
    )
    print("|---:|---:|" + "---:|" * len(ACTIONS) + "---:|---:|---:|")
    for level in result.get("levels", []):
        if "summary" not in level:
            print(f"| {level['sessions']} | {level.get('skipped', 'not finished')} |")
            continue
        s = level["summary"]
        cells = [seconds_cell(s["p50_s"][a], s["p95_s"][a]) for a in ACTIONS]
        cpu = s["serving_cpu_s_per_watcher_per_min"]
        speed = f"{s['images_per_s_with']:,.0f} / {s['images_per_s_without']:,.0f} = {s['ratio']:.2f}"
        print(
            f"| {level['sessions']} | {s['failed']} | {' | '.join(cells)} | {cpu:.2f} s/min = {cpu / 0.6:.2f} % "
            f"of a core | {s['rss_mb']:,.0f} MB ({s['hwm_mb']:,.0f}) | {speed} |"
        )
        for failure in level["failures"][:10]:
            print(f"    failed: {failure}")
    print("\n| window | seconds | training images/s | CPU, % of a core: training | serving | browsers | the rest |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, w in windows(result):
        shares = [100 * w[f"{k}_cpu_s"] / w["seconds"] for k in ("training", "serving", "browsers", "others")]
        speed = f"{w['images_per_s']:,.0f}" if w["images_per_s"] else "none"
        print(f"| {name} | {w['seconds']:.0f} | {speed} | " + " | ".join(f"{x:.0f}" for x in shares) + " |")


def windows(result: dict) -> list[tuple[str, dict]]:
    """Every window in the order measured, named."""
    baselines, found = result.get("baselines", []), []
    for i, baseline in enumerate(baselines):
        found.append((f"nobody connected ({i + 1})", baseline))
        watched = [lv for lv in result.get("levels", []) if lv.get("baseline") == i and "watch" in lv]
        found += [(f"{lv['sessions']} watching", lv["watch"]) for lv in watched]
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=None, help=f"data source (default: {DEFAULT_DATA} when present, else synthetic)"
    )
    parser.add_argument("--sessions", default="10,20", help="comma-separated numbers of participants, in turn")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the run (default: 30, synthetic 1000)")
    parser.add_argument("--baseline-s", type=float, default=60.0, help="seconds of each window without browsers")
    parser.add_argument("--watch-s", type=float, default=60.0, help="seconds every session watches the Train page")
    parser.add_argument("--warmup-steps", type=int, default=20, help="training steps before the first window")
    parser.add_argument("--board-runs", type=int, default=30, help="finished runs already on the leaderboard")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="the whole benchmark's limit")
    parser.add_argument(
        "--app", default=str(ROOT), help="the checkout whose dashboard to serve, e.g. an earlier version to compare"
    )
    parser.add_argument("--py-spy", default=None, help="path of py-spy: profile the server while sessions watch")
    parser.add_argument("--json", default=None, help="also write the results here (and the server's log beside it)")
    args = parser.parse_args()
    if args.data is None:
        args.data = str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else SYNTHETIC
    args.epochs = args.epochs or (1000 if args.data == SYNTHETIC else 30)
    args.sessions = [int(n) for n in args.sessions.split(",")]
    return args


def kill_everything_started() -> None:
    """The last resort past the time limit: every process this one started, by id, then this one."""
    for pid in reversed(proc_usage.descendants(os.getpid())):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os._exit(3)


def main() -> None:
    args = parse_args()
    result: dict = {"machine": machine(), "load_before": load_average(), "levels": []}
    result["settings"] = {k: v for k, v in vars(args).items() if k != "json"}
    print(f"{result['machine']}\nload average before: {result['load_before']}", flush=True)
    watchdog = threading.Timer(args.timeout_s + 60, kill_everything_started)
    watchdog.daemon = True
    watchdog.start()
    try:
        asyncio.run(asyncio.wait_for(run(args, result), args.timeout_s))
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
        result["error"] = f"stopped at the {args.timeout_s:.0f} s limit"
    except Exception as err:  # reported with what was measured before it
        result["error"] = f"{type(err).__name__}: {err}"
    watchdog.cancel()
    result["load_after"] = load_average()
    baselines = result.get("baselines", [])
    for level in result["levels"]:
        if "watch" in level and len(baselines) > level["baseline"] + 1:
            level["summary"] = summary(level, baselines[level["baseline"]], baselines[level["baseline"] + 1])
    report(result)
    print(f"load average after: {result['load_after']}" + (f"\nerror: {result['error']}" if "error" in result else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
