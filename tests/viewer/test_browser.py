"""The viewer in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium with explicit binary and driver paths, so Selenium Manager never downloads anything),
against a real uvicorn server on 127.0.0.1 over sessions recorded for real.

Screenshots land in each test's tmp_path (`*.png`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from ise_es.store.sql import open_store
from tests.viewer.conftest import SCENARIOS, record, replay

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`ise-es serve` in its own process on a free loopback port.

    Its own process, not a thread of the test: the test records and replays in-process, and
    SQLite connections of two stores in one process must not interleave with a file opened and
    closed by other code (closing any descriptor of a file drops the process's POSIX locks on
    it); a real user runs the viewer and the recorder as separate processes too.
    """

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from cli import main; main()", "serve", "--db", self.url,
                 "--port", str(self.port), "--index-interval", "0.5"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.settle()
        return self

    def index(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/api/index", timeout=5) as r:
            return dict(json.load(r))

    def settle(self, timeout: float = 60) -> None:
        """Wait until the server answers and its session index has read the whole log."""
        with open_store(self.url) as store:
            last = max(
                store.read_stream(s.stream_id, s.version, to_version=s.version)[0].position
                for s in store.streams()
                if s.stream_type in ("session", "replay")
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                state = self.index()
                assert state["error"] is None, state["error"]
                if state["position"] >= last:
                    return
            except OSError:
                pass  # not listening yet
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)


def chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='ise-es-chromium-')}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def browser_corpus(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Any:
    import shutil

    tmp = tmp_path_factory.mktemp("browser-corpus")
    path = tmp / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    xss = record(url, tmp, "viewer-xss")
    drift = record(url, tmp, "viewer-drift", "--max-turns", "1")
    shell = record(url, tmp, "viewer-shell")
    return {"url": url, "tmp": tmp, "xss": xss, "drift": drift, "shell": shell}


@pytest.fixture(scope="module")
def server(browser_corpus: dict[str, Any]) -> Iterator[Server]:
    with Server(browser_corpus["url"], browser_corpus["tmp"] / "serve.log") as s:
        yield s


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    d = chromium()
    yield d
    d.quit()


def wait(driver: WebDriver, cond: Callable[[WebDriver], Any], timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond)


def shot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def rows(driver: WebDriver) -> list[str]:
    """The session ids in the list, read in one script (the table is redrawn as it loads)."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('#session-table tbody tr[data-session]')]"
            ".map((r) => r.dataset.session)"
        )
    )


def loaded(driver: WebDriver) -> bool:
    return driver.execute_script("return document.body.dataset.loaded === '1'") is True


def rendered(driver: WebDriver) -> bool:
    return driver.execute_script("return !!document.body.dataset.rendered") is True


def no_js_errors(driver: WebDriver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_list_filter_open_session_output_exit_code_and_diff(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    c = browser_corpus
    driver.get(f"{server.base}/sessions")
    wait(driver, lambda d: len(rows(d)) == 3)
    shot(driver, tmp_path, "list")
    Select(driver.find_element(By.NAME, "tool")).select_by_value("edit")
    wait(driver, lambda d: rows(d) == [c["xss"]])
    assert "tool=edit" in driver.current_url
    tabs = driver.find_element(By.ID, "status-tabs").text
    assert "completed" in tabs and "turn cap" not in tabs
    driver.find_element(By.CSS_SELECTOR, f"tr[data-session='{c['xss']}'] a").click()
    wait(driver, rendered)
    shot(driver, tmp_path, "session")
    cards = driver.find_elements(By.CSS_SELECTOR, ".block.tool")
    failing = next(card for card in cards if "exit 3" in card.text)
    assert "to-stderr" in failing.text  # its real stderr
    assert failing.find_element(By.CSS_SELECTOR, ".badge.exit").text == "exit 3"
    colours = driver.find_elements(
        By.XPATH, "//pre[contains(@class,'term')]/span[text()='red alert']"
    )
    assert colours and colours[0].value_of_css_property("color") == "rgba(205, 49, 49, 1)"
    folded = next(card for card in cards if "show all" in card.text)
    assert "150" not in folded.find_element(By.CSS_SELECTOR, "pre.term").text
    folded.find_element(By.CSS_SELECTOR, ".fold-toggle").click()
    assert "150" in folded.find_element(By.CSS_SELECTOR, "pre.term").text
    edit = next(card for card in cards if card.get_attribute("data-tool") == "edit")
    edit.find_element(By.CSS_SELECTOR, ".diff-toggle").click()
    diff = wait(driver, lambda d: edit.find_element(By.CSS_SELECTOR, "pre.diff"))
    assert "+second line, edited" in diff.text and "-second line" in diff.text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", edit)
    shot(driver, tmp_path, "diff")
    driver.back()
    wait(driver, lambda d: rows(d) == [c["xss"]])
    assert driver.find_element(By.NAME, "tool").get_attribute("value") == "edit"
    driver.back()
    wait(driver, lambda d: len(rows(d)) == 3)
    no_js_errors(driver)


def test_search_and_status_tabs(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any]
) -> None:
    driver.get(f"{server.base}/sessions")
    wait(driver, lambda d: len(rows(d)) == 3)
    driver.find_element(By.TAG_NAME, "body").send_keys("/")
    box = driver.switch_to.active_element
    assert box.get_attribute("id") == "q"
    box.send_keys("linecount")
    wait(driver, lambda d: rows(d) == [browser_corpus["shell"]])
    box.clear()
    box.send_keys(Keys.ENTER)
    wait(driver, lambda d: len(rows(d)) == 3)
    driver.find_element(By.CSS_SELECTOR, "[data-status='turn_cap']").click()
    wait(driver, lambda d: rows(d) == [browser_corpus["drift"]])
    assert "status=turn_cap" in driver.current_url
    flag = driver.find_element(By.CSS_SELECTOR, "#session-table .flag")
    assert flag.text == "⚑ 1"


def test_xss_payload_in_tool_output_stays_text(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    driver.get(f"{server.base}/sessions/{browser_corpus['xss']}")
    wait(driver, rendered)
    time.sleep(0.5)  # give any injected handler time to fire
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert driver.execute_script("return window.__xss === undefined") is True
    assert driver.find_elements(By.CSS_SELECTOR, "#timeline script, #timeline img") == []
    page = driver.find_element(By.ID, "timeline").text
    assert "<script>window.__xss=1;alert(1)</script>" in page
    assert '<img src=x onerror="window.__xss=2">' in page
    # and the whole-output view (the blob) is text too
    card = driver.find_element(By.CSS_SELECTOR, ".block.tool")
    raw = card.find_element(By.LINK_TEXT, "raw 78 B").get_attribute("href")
    driver.get(raw)
    assert driver.execute_script("return window.__xss === undefined") is True
    assert "<script>window.__xss=1" in driver.find_element(By.TAG_NAME, "body").text
    shot(driver, tmp_path, "xss-blob")


def test_deep_link_keyboard_and_audit_marks(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    driver.get(f"{server.base}/sessions/{browser_corpus['drift']}")
    wait(driver, rendered)
    finding = driver.find_element(By.CSS_SELECTOR, "#turn-1 .turn-head .finding")
    assert "role drift" in finding.text
    driver.get(f"{server.base}/sessions/{browser_corpus['shell']}#v7")
    wait(driver, rendered)
    target = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".block.target"))
    assert target.find_elements(By.ID, "v7")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    body.send_keys("j")
    focused = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".turn.focused"))
    assert focused.get_attribute("data-turn") == "2"
    body.send_keys("k")
    wait(
        driver,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, ".turn.focused").get_attribute("data-turn") == "1"
        ),
    )
    body.send_keys("/")
    search = driver.switch_to.active_element
    assert search.get_attribute("id") == "session-search"
    search.send_keys("status=0", Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, "match-count").text == "1 / 1")
    shot(driver, tmp_path, "search")
    no_js_errors(driver)


def test_follow_a_live_session_while_it_records(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    url = browser_corpus["url"]
    directory = tmp_path / "slow"
    directory.mkdir()
    (directory / "viewer-slow.yaml").write_text((SCENARIOS / "viewer-slow.yaml").read_text())
    with open_store(url) as store:
        before = {s.stream_id for s in store.streams(stream_type="session")}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import main; main()", "record", "--scenario",
         str(directory), "--db", url],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        stream = None
        deadline = time.monotonic() + 20
        while stream is None:
            assert time.monotonic() < deadline and proc.poll() is None, "recording did not start"
            with open_store(url) as store:
                new = [
                    s.stream_id
                    for s in store.streams(stream_type="session")
                    if s.stream_id not in before and store.read_stream(s.stream_id, 1, to_version=1)
                ]
            stream = new[0] if new else None
            time.sleep(0.1)
        driver.get(f"{server.base}/sessions/{stream.removeprefix('session-')}")
        wait(driver, rendered)
        live = driver.find_element(By.CSS_SELECTOR, ".live")
        assert live.is_displayed(), "the session ended before the page opened"
        assert "live-done-marker" not in driver.find_element(By.ID, "timeline").text
        first = int(driver.execute_script("return document.body.dataset.version"))
        wait(driver, lambda d: "tick 1" in d.find_element(By.ID, "timeline").text, 20)
        shot(driver, tmp_path, "live-running")
        wait(driver, lambda d: "live-done-marker" in d.find_element(By.ID, "timeline").text, 30)
        wait(driver, lambda d: "SESSION ENDED" in d.find_element(By.ID, "timeline").text.upper())
        assert int(driver.execute_script("return document.body.dataset.version")) > first
        assert not live.is_displayed()
        shot(driver, tmp_path, "live-ended")
    finally:
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    # the list picks the new session up without a restart
    driver.get(f"{server.base}/sessions")
    wait(driver, lambda d: stream.removeprefix("session-") in rows(d), 20)
    no_js_errors(driver)


def test_open_a_replay(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    replay_id = replay(browser_corpus["url"], browser_corpus["shell"])
    server.settle()
    driver.get(f"{server.base}/replays/{replay_id}")
    wait(driver, loaded)
    steps = driver.find_elements(By.CSS_SELECTOR, ".step-left")
    assert len(steps) == 6
    verdicts = driver.find_elements(By.CSS_SELECTOR, ".step-right .badge.verdict")
    assert len(verdicts) == 6
    assert {v.text for v in verdicts} <= {"identical", "equivalent"}
    assert "linecount" in steps[0].text and "exit 127" in steps[0].text
    shot(driver, tmp_path, "replay")
    driver.find_element(By.CSS_SELECTOR, ".session-head a.mono").click()
    wait(driver, rendered)
    assert browser_corpus["shell"] in driver.current_url
    driver.back()
    wait(driver, loaded)
    assert "/replays/" in driver.current_url
    no_js_errors(driver)


def test_compare_and_corpus_pages(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    c = browser_corpus
    driver.get(f"{server.base}/compare?a={c['xss']}&b={c['shell']}")
    wait(driver, loaded)
    heads = driver.find_elements(By.CSS_SELECTOR, ".cmp-head")
    assert [h.find_element(By.TAG_NAME, "a").text for h in heads] == [c["xss"], c["shell"]]
    assert "different intents" in driver.find_element(By.ID, "main").text
    assert driver.find_elements(By.CSS_SELECTOR, ".cmp-calls li")
    shot(driver, tmp_path, "compare")
    driver.get(f"{server.base}/")
    wait(driver, loaded)
    table = driver.find_element(By.ID, "table3").text
    assert "UNIQUE INTENTS" in table.upper() and "COMPLETION RATE" in table.upper()
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    assert "Work queue" in driver.find_element(By.ID, "queue").text
    shot(driver, tmp_path, "corpus")
    no_js_errors(driver)


def test_a_diverged_replay_shows_its_diff_and_normalizers(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    session = record(browser_corpus["url"], browser_corpus["tmp"], "viewer-diverge")
    replay_id = replay(browser_corpus["url"], session)
    server.settle()
    driver.get(f"{server.base}/replays/{replay_id}")
    wait(driver, loaded)
    assert driver.find_element(By.CSS_SELECTOR, ".session-head .badge.verdict").text == "diverged"
    rights = driver.find_elements(By.CSS_SELECTOR, ".step-right")
    assert rights[0].find_element(By.CSS_SELECTOR, ".badge.verdict").text == "equivalent"
    assert "timestamps" in rights[0].text  # the normalizer that fired
    assert rights[1].find_element(By.CSS_SELECTOR, ".badge.verdict").text == "diverged"
    diff = rights[1].find_element(By.CSS_SELECTOR, "pre.diff")
    assert diff.find_elements(By.CSS_SELECTOR, ".dl.add") and diff.find_elements(
        By.CSS_SELECTOR, ".dl.del"
    )
    shot(driver, tmp_path, "replay-diverged")
    no_js_errors(driver)


def test_web_exchanges_of_a_tool_call(
    driver: WebDriver, server: Server, browser_corpus: dict[str, Any], tmp_path: Path
) -> None:
    session = record(browser_corpus["url"], browser_corpus["tmp"], "03-web-research")
    driver.get(f"{server.base}/sessions/{session}")
    wait(driver, rendered)
    exchanges = driver.find_elements(By.CSS_SELECTOR, ".block.tool .web-row")
    assert len(exchanges) == 2
    assert all(" GET " in f" {row.text} " for row in exchanges)
    assert all("http" in row.find_element(By.CSS_SELECTOR, ".url").text for row in exchanges)
    body = exchanges[0].find_elements(By.PARTIAL_LINK_TEXT, "body")
    assert body and "/api/blobs/" in (body[0].get_attribute("href") or "")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", exchanges[0])
    shot(driver, tmp_path, "web")
    no_js_errors(driver)
