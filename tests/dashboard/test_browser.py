"""The dashboard in a real browser: `streamlit run` on a free loopback port, headless Chromium
(Debian's `chromium` + `chromium-driver`, which `make test` installs) loads every page, the
test asserts on the visible text and saves a screenshot of every page (`make screenshots` keeps
them in docs/img/dashboard/ for the documentation)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.dashboard.conftest import APP

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("DISPUTE_CLASSIFIER_SCREENSHOTS") or Path(tempfile.gettempdir()) / "dispute-classifier-screenshots")
"""Where the browser test saves a screenshot of every page (by default outside the repository;
`make screenshots` points it at docs/img/dashboard/)."""
WIDTH = int(os.environ.get("DISPUTE_CLASSIFIER_SCREENSHOT_WIDTH") or 1440)
"""Browser window width in pixels (`make screenshots` takes 1200, the documentation's width)."""

# (url path, text that must be visible once the page has rendered, is there a chart)
PAGES = [
    ("", "Prompt, retrieve or fine-tune?", False),
    ("leaderboard", "Pareto front", True),
    ("break-even", "Break-even volume", True),
    ("per-class", "Compare with run B", True),
    ("errors", "misclassified example(s)", False),
    ("training", "LoRA r=16", True),
    ("data", "Reading sample", True),
    ("curves", "Learning curve and label noise", True),
    ("monitoring", "Drift flagged in 1 of 1 window(s)", True),  # a prediction log with a drifted window and a shadow
]


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing (apt-get install chromium chromium-driver; `make test` does it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(dashboard_folders, tmp_path_factory):
    """`streamlit run dashboard/streamlit_app.py` on a free loopback port, stopped after the module."""
    from tests.dashboard.test_monitoring import write_log

    port = free_port()
    predlog = write_log(tmp_path_factory.mktemp("predlog") / "log.db", drifted=True)
    env = {
        **os.environ,
        "DISPUTE_CLASSIFIER_RUNS": str(dashboard_folders.runs),
        "DISPUTE_CLASSIFIER_REPORTS": str(dashboard_folders.reports),
        "DISPUTE_CLASSIFIER_PREDLOG": predlog,
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path_factory.mktemp("home")),
    }
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(APP),
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                "--client.toolbarMode",
                "minimal",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start on {url}:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    problem = _missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},1800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("path, expected, has_chart", PAGES, ids=[p or "verdict" for p, _, _ in PAGES])
def test_page_in_chromium(server, browser, path, expected, has_chart):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/{path}")
    body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
    try:
        WebDriverWait(browser, 90, poll_frequency=0.5).until(lambda d: expected in body(d))
        if has_chart:  # Vega draws after the text arrives
            WebDriverWait(browser, 60, poll_frequency=0.5).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg")
            )
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        time.sleep(1.0)  # let the last chart finish its transition before the picture
        browser.save_screenshot(str(SHOTS / f"{path or 'verdict'}.png"))
    text = body(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), text[:2000]
    assert "Traceback" not in text
    # the sidebar navigation lists every page
    for title in ("Verdict", "Leaderboard", "Break-even", "Per class", "Errors", "Training", "Data"):
        assert title in text
