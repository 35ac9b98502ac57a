"""The web app (liveset/web/) in a real browser: Debian's Chromium driven by Playwright.

Each browser context is one device (its own localStorage, so its own device_id). The
server is the Procfile's process with WEB_APP=1, killed with -9 where a test needs it.
Chromium comes from Debian's packages, installed here when the machine has none: Playwright's
own browser download is not used.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from liveset.web_app import WEB_DIR

from .clients import token

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=900)


def _install_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if shutil.which("apt-get") is None:
        pytest.fail("the browser tests need Chromium: install Debian's `chromium` package (no apt-get here)")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:  # package lists not fetched yet
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    _install_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        await chromium.close()


async def _device(browser: Browser, url: str, user: str, viewport: ViewportSize = PHONE, extra: str = "") -> Page:
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{url}/#token={token(user)}{extra}")
    await page.wait_for_selector("#link[data-state=online]")
    return page


async def _start(page: Page, plan: str = "") -> None:
    await page.fill("#plan", plan)
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#live:not([hidden])")


async def _one_set_on_two_devices(browser: Browser, spawn: Any, plan: str,
                                  second: ViewportSize) -> tuple[Any, str, Page, Page]:
    """A server, a user, and two devices of theirs: a phone that started `plan` and logged its
    first set, and a second device that shows that set."""
    server = await spawn(WEB_APP="1")
    user = f"web-{uuid.uuid4().hex[:8]}"
    phone = await _device(browser, server.url, user, PHONE)
    other = await _device(browser, server.url, user, second)
    await _start(phone, plan)
    await phone.click("#log-set")
    await other.wait_for_selector("#sets li[data-set-id]:not([data-pending])")
    return server, user, phone, other


async def _sets(page: Page) -> list[str]:
    return [re.sub(r"\s+", " ", text).strip() for text in await page.locator("#sets li .what").all_text_contents()]


def test_the_vendored_client_is_the_release_its_note_names() -> None:
    note = (WEB_DIR / "vendor" / "README.md").read_text()
    digest = hashlib.sha256((WEB_DIR / "vendor" / "socket.io.esm.min.js").read_bytes()).hexdigest()
    assert digest in note and "socket.io-client@4.8.4" in note
    assert (WEB_DIR / "vendor" / "socket.io-client.LICENSE").read_text().startswith("The MIT License")


async def test_the_app_is_served_with_its_own_policy_and_only_when_asked(spawn) -> None:
    with_app, without = await spawn(WEB_APP="1"), await spawn()
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{with_app.url}/")
        assert page.status_code == 200 and "<title>liveset</title>" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["x-frame-options"] == "DENY"
        api = await http.get(f"{with_app.url}/api/v1/workouts")  # the REST side keeps its own policy
        assert api.status_code == 401 and api.headers["content-security-policy"].startswith("default-src 'none'")
        assert (await http.get(f"{with_app.url}/nothing-here")).status_code == 404
        assert (await http.get(f"{without.url}/")).status_code == 404


async def test_two_devices_of_one_user_train_as_one(browser: Browser, spawn) -> None:
    server = await spawn(WEB_APP="1")
    user = f"web-{uuid.uuid4().hex[:8]}"
    phone = await _device(browser, server.url, user, PHONE)
    laptop = await _device(browser, server.url, user, DESKTOP)
    await _start(phone, "bench_press 3x5 60\nsquat 2x5 100")
    await laptop.wait_for_selector("#live:not([hidden])", timeout=1000)
    assert "Now: bench_press 5 reps @ 60 kg, set 1 of 3" in await laptop.text_content("#up-next")

    # A set logged on the phone: on the laptop within a second, once; a record toast on both.
    await phone.fill("#rest-seconds", "2")
    await phone.click("#log-set")
    await laptop.wait_for_selector("#sets li[data-set-id]:not([data-pending])", timeout=1000)
    for page in (phone, laptop):
        await page.wait_for_selector(".toast[data-key]", timeout=1000)
        assert await _sets(page) == ["bench_press 60 kg × 5 · PR"]
    # The rest timer it started ends on both within 100 ms of each other.
    ended = []
    for page in (phone, laptop):
        await page.wait_for_selector("#rest-clock[data-state=done]", timeout=5000)
        ended.append(int(await page.get_attribute("#rest-clock", "data-ended-at") or 0))
    assert abs(ended[0] - ended[1]) <= 100, ended
    assert "set 2 of 3" in await laptop.text_content("#up-next")

    # Edited on the laptop (prefilled from the last set), deleted on the phone.
    await laptop.click("#sets button[data-action=edit]")
    await laptop.fill("#sets input[name=reps]", "6")
    await laptop.click("#sets button[data-action=save]")
    await phone.wait_for_function("() => document.querySelector('#sets .what').textContent.includes('× 6')",
                                  timeout=1000)
    await laptop.click("#log-set")
    await phone.wait_for_function("() => document.querySelectorAll('#sets li').length === 2", timeout=1000)
    await phone.locator("#sets li").nth(1).locator("button[data-action=delete]").click()
    await laptop.wait_for_function("() => document.querySelectorAll('#sets li').length === 1", timeout=1000)

    # Completed on the phone: the summary on both, then the history shows it.
    await phone.click("#complete")
    for page in (phone, laptop):
        await page.wait_for_selector("#summary:not([hidden])", timeout=2000)
        assert "1 set of 1 exercise" in await page.text_content("#summary-text")
    await laptop.click("#summary-done")
    await laptop.click("[data-tab=history]")
    await laptop.wait_for_selector("#workouts button")
    await laptop.click("#workouts button")
    await laptop.wait_for_selector("#workout-detail:not([hidden])")
    assert "bench_press 60 kg × 6" in await laptop.text_content("#detail-sets")
    assert phone.errors == [] and laptop.errors == []  # type: ignore[attr-defined]


async def test_two_users_in_a_room_see_each_other(browser: Browser, spawn) -> None:
    server = await spawn(WEB_APP="1")
    ana, ben = f"ana-{uuid.uuid4().hex[:6]}", f"ben-{uuid.uuid4().hex[:6]}"
    host = await _device(browser, server.url, ana, DESKTOP)
    await host.click("[data-tab=room]")
    await host.fill("#room-name", "Morning crew")
    await host.click("#room-create button[type=submit]")
    await host.wait_for_selector("#room-in:not([hidden])")
    invite = await host.input_value("#room-invite")
    assert invite.startswith(f"{server.url}/#join=")

    guest = await _device(browser, server.url, ben, PHONE, extra="&join=" + invite.split("#join=")[1])
    await host.wait_for_selector(f"#presence li[data-user={ben}]", timeout=2000)
    await guest.wait_for_selector("#room-in:not([hidden])")  # the invite's room is shown
    await guest.click("[data-tab=train]")
    await _start(guest, "Row 1x1")
    await guest.click("#log-set")
    await host.wait_for_selector("#activity li[data-type=set_completed]", timeout=2000)
    assert f"{ben} logged row" in await host.text_content("#activity")
    assert "training" in await host.text_content(f"#presence li[data-user={ben}]")
    # The host's second device does not know the room yet: it offers the rooms of its user.
    tablet = await _device(browser, server.url, ana, PHONE)
    await tablet.click("[data-tab=room]")
    await tablet.click("#my-rooms-list button:has-text('Enter Morning crew')")
    await tablet.wait_for_selector("#room-in:not([hidden])")
    await host.wait_for_selector(f"#presence li[data-user={ana}]:has-text('2 devices')", timeout=2000)
    await guest.close()
    await host.wait_for_selector(f"#presence li[data-user={ben}]", state="detached", timeout=2000)


async def test_a_server_killed_mid_workout_loses_nothing_and_shows_each_set_once(browser: Browser, spawn) -> None:
    server, user, phone, watch = await _one_set_on_two_devices(browser, spawn, "deadlift 5x3 140", PHONE)
    server.kill9()
    await phone.wait_for_selector("#offline:not([hidden])", timeout=5000)
    for _ in range(2):  # logged while the server is down: kept on the phone, shown as waiting
        await phone.click("#log-set")
    assert len(await phone.locator("#sets li[data-pending]").all()) == 2
    await server.start()
    await phone.wait_for_selector("#sets li[data-pending]", state="detached", timeout=15000)
    await watch.wait_for_function("() => document.querySelectorAll('#sets li').length === 3", timeout=15000)
    for page in (phone, watch):
        assert await _sets(page) == ["deadlift 140 kg × 3 · PR"] + ["deadlift 140 kg × 3"] * 2
    await phone.click("#complete")
    await watch.wait_for_selector("#summary:not([hidden])", timeout=2000)
    async with httpx.AsyncClient() as http:
        auth = {"Authorization": f"Bearer {token(user)}"}
        page = (await http.get(f"{server.url}/api/v1/workouts", headers=auth)).json()
    assert [w["set_count"] for w in page["data"]] == [3]


async def test_a_record_edited_away_is_withdrawn_on_every_device_and_nothing_moves(browser: Browser, spawn) -> None:
    _, _, phone, laptop = await _one_set_on_two_devices(browser, spawn, "bench_press 3x5 60", DESKTOP)
    await phone.fill("#set-weight", "80")
    button = await phone.locator("#log-set").bounding_box()
    await phone.click("#log-set")
    heavier = phone.locator("#sets li").nth(1)
    await heavier.wait_for()
    key = await heavier.get_attribute("data-set-id")
    for page in (phone, laptop):  # the toast of the heavier set, over the page: nothing above the list moved
        await page.wait_for_selector(f".toast[data-key='{key}']", timeout=1000)
    assert await phone.locator("#log-set").bounding_box() == button
    assert await phone.eval_on_selector("#toasts", "e => getComputedStyle(e).position") == "fixed"
    await laptop.locator(f"#sets li[data-set-id='{key}'] button[data-action=edit]").click()
    await laptop.fill("#sets input[name=weight_kg]", "60")  # as the first set: a tie is no record
    await laptop.click("#sets button[data-action=save]")
    for page in (phone, laptop):
        await page.wait_for_selector(f".toast[data-key='{key}'][data-withdrawn]", timeout=2000)
        assert await _sets(page) == ["bench_press 60 kg × 5 · PR", "bench_press 60 kg × 5"]


async def test_the_set_form_follows_the_plan_and_says_what_is_wrong(browser: Browser, spawn) -> None:
    # A new user's fourth bench set: after the plan's last one the form still said bench_press,
    # because the button they had tapped kept the focus; and "60,5" kg was logged as 605.
    server = await spawn(WEB_APP="1")
    page = await _device(browser, server.url, f"form-{uuid.uuid4().hex[:8]}", PHONE)
    await _start(page, "Bench Press 2x5 60,5\nDips 1x10")
    for _ in range(2):
        await page.click("#log-set")
    await page.wait_for_function("() => document.getElementById('set-exercise').value === 'dips'")
    assert [await page.input_value(f"#set-{f}") for f in ("weight", "reps")] == ["", "10"]  # bodyweight
    await page.fill("#set-weight", "12,5kg")
    await page.click("#log-set")
    assert "is not a weight" in await page.text_content("#set-error")
    await page.fill("#set-weight", "12,5")
    await page.click("#log-set")
    await page.wait_for_function("() => document.querySelectorAll('#sets li:not([data-pending])').length === 3")
    assert await _sets(page) == ["bench_press 60.5 kg × 5 · PR", "bench_press 60.5 kg × 5", "dips 12.5 kg × 10 · PR"]
    assert await page.text_content("#set-error") == ""
    assert "Plan done" in await page.text_content("#up-next")
