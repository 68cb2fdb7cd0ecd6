"""The demo as a new user tries it: ``./scripts/demo``, its page in a browser, a zone drawn.

Usage: ``unshare -rn python -m bench.demo_page [--loads N]`` (root, or user namespaces).

The demo (``scripts/demo --port 0``) and Debian's Chromium run in a network namespace of their
own: loopback, and a veth pair standing in for the user's LAN (10.99.0.2/24, its peer end in the
same namespace), so Chromium runs as a user's would, with no WebRTC flag (its host addresses
hidden behind mDNS names, loopback left out of its candidates) and nothing leaves the box. The
page address the demo prints is opened ``--loads`` times; for each, the page's own marks
(``window.liveTimings``, seconds since the page was opened) and, 1.5 s later, the video's time,
decoded frames and width. Then a zone is drawn over the lower half of the picture with synthetic
pointer events, saved, and the time until the next walker's intrusion in it shows in the page's
feed is printed. Screenshots go to a temporary folder, printed at the end.

The last line is ``demo_video_playing_s: min/median/max zone_intrusion_s: T``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration.cameras.test_cameras_technician_page import _draw
from tests.integration.web.browser import browser

ROOT = Path(__file__).resolve().parents[1]
_MODE = "document.querySelector('[data-camera] .view-mode')"


def _lan_in_this_namespace() -> None:
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"],
        ["ip", "addr", "add", "10.99.0.2/24", "dev", "lan0"],
        ["ip", "link", "set", "lan0", "up"],
        ["ip", "link", "set", "lan1", "up"],
        ["ip", "route", "add", "default", "via", "10.99.0.1", "dev", "lan0"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)


async def _demo_url(demo: asyncio.subprocess.Process) -> str:
    assert demo.stdout is not None
    for _ in range(1000):  # the demo's start-up lines, then its page address
        line = (await asyncio.wait_for(demo.stdout.readline(), 300)).decode()
        if not line:
            break
        found = re.search(r"page:\s+(\S+)", line)
        if found:
            return found.group(1)
    raise SystemExit("the demo printed no page address")


async def _run(loads: int, shots: Path) -> None:
    _lan_in_this_namespace()
    t0 = time.monotonic()
    demo = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "demo"),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
    )
    playing: list[float] = []
    try:
        url = await _demo_url(demo)
        print(f"demo up in {time.monotonic() - t0:.1f} s", flush=True)
        assert demo.stdout is not None
        drain = asyncio.create_task(demo.stdout.read())  # the demo's log, not read: keep it flowing
        async with browser(shots / "profile", "--autoplay-policy=no-user-gesture-required") as page:
            for i in range(loads):
                await page.goto(url)
                await page.wait_for(f"{_MODE} && ['relay', 'encode', 'jpeg'].includes({_MODE}.dataset.mode)", 30)
                mode = await page.js(f"{_MODE}.dataset.mode")
                marks: dict[str, float] = await page.js("window.liveTimings") or {}
                await page.js("new Promise((r) => setTimeout(r, 1500))")
                video = await page.js(
                    "(() => { const v = document.querySelector('[data-camera] video');"
                    " return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames, v.videoWidth]; })()"
                )
                steps = ", ".join(f"{k} {v / 1000:.3f}" for k, v in marks.items())
                print(f"load {i + 1}: {mode}; s since opened: {steps}; 1.5 s later [time, frames, width] {video}")
                if mode != "jpeg" and "playing" in marks:
                    playing.append(marks["playing"] / 1000)
                await page.screenshot(shots / f"load-{i + 1}.png")
                await page.goto("about:blank")
                await asyncio.sleep(1.0)  # the closed page's viewer goes before the next opens
            await page.goto(url)
            await page.wait_for("document.querySelector('[data-camera]') !== null && role === 'technician'", 20)
            await page.js("document.querySelector('[data-camera] .edit-zones').click()")
            await page.wait_for("document.querySelector('#zone-picture').naturalWidth > 0", 10)
            await _draw(page, [(0.05, 0.45), (0.55, 0.45), (0.55, 0.98), (0.05, 0.98)])
            await page.js(
                "const n = document.querySelector('#zone-name'); n.value = 'yard'; n.dispatchEvent(new Event('input'))"
            )
            await page.js("document.querySelector('#zone-save').click()")
            await page.wait_for("document.querySelector('#zone-msg').className !== 'hint'", 10)
            print("save:", await page.js("document.querySelector('#zone-msg').textContent"), flush=True)
            saved = time.monotonic()
            await page.wait_for(
                "[...document.querySelectorAll('#feed li')]"
                ".some((li) => li.textContent.includes('intrusion') && li.textContent.includes(\"'yard'\"))",
                90,
            )
            caught = time.monotonic() - saved
            await page.screenshot(shots / "zone.png")
        drain.cancel()
    finally:
        demo.terminate()
        await demo.wait()
    print(f"screenshots: {shots}")
    if not playing:
        raise SystemExit("no load of the page played live video")
    print(
        f"demo_video_playing_s: {min(playing):.3f}/{statistics.median(playing):.3f}/{max(playing):.3f} "
        f"zone_intrusion_s: {caught:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=3, help="times the page is opened (default 3)")
    args = parser.parse_args()
    asyncio.run(_run(args.loads, Path(tempfile.mkdtemp(prefix="demo-page-"))))


if __name__ == "__main__":
    main()
