"""Screenshots of the web app for docs/screenshots/, taken from a running `liveset dev`.

    python3 run.py server &                       # or PORT=... python3 run.py server
    .venv/bin/python -m liveset.dev.screenshots   # --url http://127.0.0.1:8000 --home .liveset

Two users, ana and ben, train in a room: a phone-sized and a desktop-sized view of ana's live
workout with its rest timer running, and of the room with ben's activity. Tokens are minted
with the dev server's secret (in --home). Debian's Chromium, as tests/test_web_app.py uses it.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from liveset.cli import DEV_HOME, _dev_secret
from realtime.core.auth import mint

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWS = {"phone": ViewportSize(width=390, height=844), "desktop": ViewportSize(width=1280, height=900)}


async def _open(browser: Browser, url: str, token: str, view: str, extra: str = "") -> Page:
    context = await browser.new_context(viewport=VIEWS[view], device_scale_factor=1)
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{url}/#token={token}{extra}")
    await page.wait_for_selector("#link[data-state=online]")
    return page


async def _fresh_workout(page: Page, name: str, plan: str) -> None:
    await page.wait_for_timeout(300)  # session:ready rendered
    if await page.is_visible("#summary-done"):
        await page.click("#summary-done")
    if await page.is_visible("#discard"):
        await page.click("#discard")  # an earlier run's workout
        await page.wait_for_selector("#start-form:not([hidden])")
    await page.fill("#workout-name", name)
    await page.fill("#plan", plan)
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#live:not([hidden])")


async def take(url: str, secret: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    ana, ben = (mint(secret, user, 3600) for user in ("ana", "ben"))
    taken = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        desktop = await _open(browser, url, ana, "desktop")
        await desktop.click("[data-tab=room]")
        if await desktop.is_visible("#room-leave"):
            await desktop.click("#room-leave")
        await desktop.fill("#room-name", "Morning crew")
        await desktop.click("#room-create button[type=submit]")
        await desktop.wait_for_selector("#room-in:not([hidden])")
        invite = (await desktop.input_value("#room-invite")).split("#join=")[1]
        phone = await _open(browser, url, ana, "phone", f"&join={invite}")
        await desktop.click("[data-tab=train]")
        await _fresh_workout(desktop, "Push day", "bench_press 3x5 60\noverhead_press 3x8 40\ndips 2x10")
        for n in (1, 2):
            await desktop.click("#log-set")
            await phone.wait_for_function(
                f"() => document.querySelectorAll('#sets li:not([data-pending])').length == {n}")
        guest = await _open(browser, url, ben, "phone", f"&join={invite}")
        await _fresh_workout(guest, "Leg day", "squat 5x5 100")
        await guest.click("#log-set")
        await phone.wait_for_selector("#activity li[data-type=set_completed]", state="attached")
        await phone.wait_for_timeout(4500)  # the record toasts are gone
        for view, page in (("phone", phone), ("desktop", desktop)):
            taken.append(out / f"workout-{view}.png")
            await page.screenshot(path=taken[-1])
            await page.click("[data-tab=room]")
            taken.append(out / f"room-{view}.png")
            await page.screenshot(path=taken[-1])
        await browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--home", type=Path, default=DEV_HOME, help="the dev server's --home (its JWT secret)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    for path in asyncio.run(take(args.url, _dev_secret(args.home), args.out)):
        print(path)


if __name__ == "__main__":
    main()
