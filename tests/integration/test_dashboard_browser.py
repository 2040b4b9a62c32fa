"""The dashboard in a real browser: headless Chromium (Debian ``chromium`` and
``chromium-driver``, driven by Selenium) against a live cluster of three node processes; it
sees a member go failed after a kill. The screenshot is kept as a test artefact."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from ember.cli._cluster import LocalCluster
from ember.consensus import Cluster
from ember.observability import derive_token

pytestmark = pytest.mark.ember_realtime

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("EMBER_TEST_ARTIFACTS", Path(__file__).parents[2] / ".artifacts"))
BOUND = 90.0  # generous: a browser and three node processes on a small shared machine

missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - selenium is a test dependency
    missing.append("selenium")


def _browser(profile: Path) -> webdriver.Chrome:
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def _screenshot(driver: webdriver.Chrome, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path))
    return path.stat().st_size


def _raft_row(driver: webdriver.Chrome, group: str) -> bool:
    """Whether the Raft table shows ``group`` with a leader and its writes committed."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#raft tbody tr')]"
        ".map(r => [...r.children].map(td => td.textContent))"
    )
    # group, member, role, leader, term, commit, applied, max lag
    return any(r[0] == group and r[3] in ("n1", "n2", "n3") and int(r[5]) >= 20 for r in rows)


def _statuses(driver: webdriver.Chrome) -> dict[str, str]:
    # One script, so a table re-rendered by the next frame is never read half old, half new.
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#members tbody tr')]"
        ".map(r => [r.dataset.member, r.dataset.status])"
    )
    return dict(rows)


async def _until(what: str, check: object, timeout: float = BOUND) -> None:  # noqa: ASYNC109
    """Poll ``check()`` (a browser query: the page gives no event to await) until true."""
    try:
        async with asyncio.timeout(timeout):
            while not check():  # type: ignore[operator]  # noqa: ASYNC110 - polls the page
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"the dashboard never showed {what}") from None


@pytest.mark.skipif(bool(missing), reason=f"needs chromium, chromium-driver, selenium: {missing}")
async def test_dashboard_shows_a_killed_member_failed(tmp_path: Path) -> None:
    async with LocalCluster(
        3, workdir=tmp_path / "cluster", discovery="seeds", extra_args=("--admin", "127.0.0.1:0")
    ) as cluster:
        n1 = cluster.nodes["n1"]
        driver = await asyncio.to_thread(_browser, tmp_path / "profile")
        try:
            driver.get(f"http://{n1.admin}/")
            await _until(
                "the login form", lambda: driver.find_element(By.ID, "login").is_displayed()
            )
            driver.find_element(By.ID, "token").send_keys(
                derive_token(cluster.cookie, cluster.cluster)
            )
            driver.find_element(By.ID, "login-button").click()
            alive = {"n1": "alive", "n2": "alive", "n3": "alive"}
            await _until("three alive members", lambda: _statuses(driver) == alive)
            assert driver.find_element(By.ID, "node-name").text == "n1"
            # A Raft group across the three, written to from a client node of this process.
            client = await cluster.client("tester")
            try:
                group = await Cluster.start(nodes=["n1", "n2", "n3"], name="orders", node=client)
                await group.wait_for_leader(timeout=BOUND)
                for i in range(20):
                    await group.write({"key": f"k{i}", "value": i}, timeout=BOUND)
            finally:
                await client.stop()
            await _until("the group and its leader", lambda: _raft_row(driver, "orders"))
            services = driver.execute_script("return document.getElementById('services').innerText")
            # local names: the registry's own and the contracts step host (ember.contracts.host)
            assert "names: 2 local, 0 eventual, 0 consistent; 0 conflicts" in services
            assert "pg: scope default: 0 groups" in services
            assert "contracts: 0 running; 0 succeeded" in services
            cluster.kill("n3")
            await cluster.wait("n3")
            await _until("n3 failed", lambda: _statuses(driver).get("n3") == "failed")
            assert driver.find_element(By.ID, "conn").text == "live"
            shot = ARTIFACTS / "dashboard.png"
            assert await asyncio.to_thread(_screenshot, driver, shot) > 10_000
        finally:
            await asyncio.to_thread(driver.quit)
