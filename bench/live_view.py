"""Live view: the box's CPU per WebRTC viewer (the camera's H.264 relayed) against the JPEG view.

Usage: ``python -m bench.live_view [--viewers N] [--window S]``.

The box side runs in this process, as in the daemon: the demo scene (640x360, 25 fps, GOP 25,
H.264, :mod:`simulators.scene`) replayed in real time by the gateway's ingest
(:class:`drivers.rtsp.RtspIngest`, ``replay=True``, every frame decoded, 5 a second handed over as
the analysed frames), its packet tap feeding :class:`gateway.live_view.StreamRelay`, the viewers
answered by :class:`gateway.live_view.LiveViews` (the same code the API calls), and an aiohttp
server on 127.0.0.1 with the offer route and the page's JPEG route (the latest analysed frame
encoded on request, as ``GET /api/v1/cameras/{id}/snapshot.jpg`` does).

The viewers run in a child process (aiortc receivers, or HTTP clients fetching one JPEG a second
as the page's fallback does), so their decoding is not counted. This process's CPU time (all its
threads) is measured over ``--window`` seconds three times: with no viewer (the ingest alone),
with N WebRTC viewers, with N JPEG viewers. Per viewer: (CPU with N - CPU with none) / N, in
percent of one core. Every packet stays on 127.0.0.0/8: both sides offer only 127.0.0.1.

Before the CPU cases, time to first frame: ``--ttff-runs`` times (at random moments of the
camera's group of pictures), one aiortc viewer offers, and the time from the start of its offer
(gathering included) to its first decoded frame is printed per step (answer, ICE and DTLS
connected, first frame), then min / median / max. The page adds its own requests and the
browser's gathering to this (the page test prints the browser's figures).

The last line is ``webrtc_viewers_per_core: N cpu_pct_per_viewer: X jpeg_cpu_pct_per_viewer: Y``
where N is 100 / X rounded down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time

import aiohttp
from aiohttp import web

from bench._peers import scene_clip
from drivers.camera import _encode_jpeg
from drivers.rtsp import DecodedFrame, RtspIngest
from edge_config.site import LiveViewSettings
from gateway.live_relay import StreamRelay
from gateway.live_view import _OFFERED, LiveViewRefused, LiveViews, _install_address_lister

_SETTLE_S = 4.0


class _Latest:
    """The camera as the live view sees it: the latest analysed frame."""

    def __init__(self) -> None:
        self.latest_frame: DecodedFrame | None = None

    def sink(self, frame: DecodedFrame) -> None:
        y, uv = frame.compact()  # the planes are the decoder's: keep a copy, as evidence does
        self.latest_frame = DecodedFrame(frame.camera, frame.t, y.copy(), frame.is_keyframe, uv)


async def _cpu_over(window: float) -> float:
    """Percent of one core this process used over ``window`` seconds."""
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    return 100.0 * (time.process_time() - c0) / (time.monotonic() - t0)


async def _box(viewers: int, window: float, ttff_runs: int) -> tuple[float, float, float]:
    camera = _Latest()
    relay = StreamRelay("bench", asyncio.get_running_loop())
    ingest = RtspIngest("bench", str(scene_clip()), display_url="clip", analysis_fps=5.0, replay=True)
    ingest.packet_tap = relay
    views = LiveViews(
        LiveViewSettings(max_viewers=16, max_viewers_per_camera=16, idle_s=3600), {"bench": camera}, {"bench": relay}
    )

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            answer = await views.offer("bench", body["sdp"], "127.0.0.1")
        except LiveViewRefused as exc:
            return web.json_response({"detail": exc.detail}, status=exc.status)
        return web.json_response({"sdp": answer.sdp, "type": "answer", "mode": answer.mode})

    async def snapshot(_request: web.Request) -> web.Response:
        frame = camera.latest_frame
        jpeg = None if frame is None else await asyncio.to_thread(_encode_jpeg, frame)
        return web.Response(body=jpeg or b"", content_type="image/jpeg")

    app = web.Application()
    app.router.add_post("/offer", offer)
    app.router.add_get("/snapshot.jpg", snapshot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    views.prepare()  # as loading the page does: aiortc imported before the first offer
    ingest_task = asyncio.create_task(ingest.run(camera.sink), name="bench.ingest")
    try:
        await asyncio.sleep(_SETTLE_S)
        await _time_to_first_frame(port, ttff_runs)
        await views.close_all()
        base = await _cpu_over(window)
        print(f"no viewer (ingest, 5 fps analysed frames kept): {base:.1f} % of a core", flush=True)
        results = []
        for kind in ("webrtc", "jpeg"):
            args = ("--client", kind, "--port", str(port), "--viewers", str(viewers))
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.live_view", *args, stdout=asyncio.subprocess.PIPE
            )
            try:
                assert child.stdout is not None
                line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode()
                if not line.startswith("READY"):
                    raise SystemExit(f"{kind} viewers did not start: {line!r}")
                await asyncio.sleep(_SETTLE_S)
                if kind == "webrtc":
                    modes = {s["mode"] for s in views.status()["sessions"]}
                    if views.viewers() != viewers or modes != {"relay"}:
                        raise SystemExit(f"expected {viewers} relayed viewers, got {views.status()}")
                cpu = await _cpu_over(window)
            finally:
                child.terminate()
                out, _ = await asyncio.wait_for(child.communicate(), 20)
            per = max(0.0, cpu - base) / viewers
            said = out.decode().strip()
            print(f"{viewers} {kind} viewers: {cpu:.1f} % of a core, {per:.2f} % each; viewers say {said}", flush=True)
            results.append(per)
            await views.close_all()
            await asyncio.sleep(1.0)
        return base, results[0], results[1]
    finally:
        ingest_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_task
        await views.close_all()
        await runner.cleanup()


async def _time_to_first_frame(port: int, runs: int) -> None:
    """One viewer at a time in a child process; its steps' times printed, then the spread."""
    firsts: list[float] = []
    for _ in range(runs):
        await asyncio.sleep(random.uniform(0.2, 1.2))  # a random moment of the 1 s GOP
        args = ("--client", "ttff", "--port", str(port), "--viewers", "1")
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.live_view", *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(child.communicate(), 60)
        steps = json.loads(out.decode().strip().splitlines()[-1])
        if "first_frame" not in steps:
            raise SystemExit(f"no frame reached the viewer: {steps}")
        firsts.append(steps["first_frame"])
        print("time to first frame: " + ", ".join(f"{k} {v:.3f} s" for k, v in steps.items()), flush=True)
    print(
        f"time_to_first_frame_s over {runs} runs: min {min(firsts):.3f} median {statistics.median(firsts):.3f} "
        f"max {max(firsts):.3f}",
        flush=True,
    )


async def _ttff_client(port: int) -> None:
    """A viewer's steps, in seconds from the start of its offer: printed as one JSON line."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    _install_address_lister()
    _OFFERED.set(("127.0.0.1",))
    t0 = time.monotonic()
    steps: dict[str, float] = {}
    first = asyncio.get_running_loop().create_future()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected":
            steps["connected"] = time.monotonic() - t0

    async def consume(track: object) -> None:
        await track.recv()  # type: ignore[attr-defined]
        if not first.done():
            first.set_result(time.monotonic() - t0)

    pc.on("track", lambda track: asyncio.ensure_future(consume(track)))
    await pc.setLocalDescription(await pc.createOffer())
    steps["offer"] = time.monotonic() - t0
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/offer", json={"sdp": pc.localDescription.sdp}) as r,
    ):
        answer = await r.json()
    steps["answer"] = time.monotonic() - t0
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    with contextlib.suppress(TimeoutError):
        steps["first_frame"] = await asyncio.wait_for(first, 15)
    await pc.close()
    print(json.dumps(steps), flush=True)


async def _webrtc_clients(port: int, n: int) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    _install_address_lister()
    _OFFERED.set(("127.0.0.1",))  # offer loopback only: nothing leaves 127.0.0.0/8
    frames = [0] * n
    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task[None]] = []

    async def consume(i: int, track: object) -> None:
        while True:
            await track.recv()  # type: ignore[attr-defined]
            frames[i] += 1

    async with aiohttp.ClientSession() as http:
        for i in range(n):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")

            def on_track(track: object, i: int = i) -> None:
                tasks.append(asyncio.create_task(consume(i, track)))

            pc.on("track", on_track)
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(f"http://127.0.0.1:{port}/offer", json={"sdp": pc.localDescription.sdp}) as r:
                answer = await r.json()
                if r.status != 200:
                    raise SystemExit(f"offer refused: {answer}")
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            pcs.append(pc)
    print("READY", flush=True)
    await _until_terminated()
    print(json.dumps({"frames_received": frames}), flush=True)
    for t in tasks:
        t.cancel()
    for pc in pcs:
        await pc.close()


async def _jpeg_clients(port: int, n: int) -> None:
    got = [0] * n

    async def viewer(i: int, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i / n)  # spread over the second, as independent pages are
        while True:
            async with http.get(f"http://127.0.0.1:{port}/snapshot.jpg") as r:
                if len(await r.read()) > 1000:
                    got[i] += 1
            await asyncio.sleep(1.0)

    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(viewer(i, http)) for i in range(n)]
        print("READY", flush=True)
        await _until_terminated()
        for t in tasks:
            t.cancel()
    print(json.dumps({"jpegs_received": got}), flush=True)


async def _until_terminated() -> None:
    import signal

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.wait_for(stop.wait(), timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=4, help="viewers at once (default 4)")
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured per case (default 15)")
    parser.add_argument("--ttff-runs", type=int, default=8, help="time-to-first-frame runs (default 8)")
    parser.add_argument("--client", choices=("webrtc", "jpeg", "ttff"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client == "webrtc":
        asyncio.run(_webrtc_clients(args.port, args.viewers))
        return
    if args.client == "ttff":
        asyncio.run(_ttff_client(args.port))
        return
    if args.client == "jpeg":
        asyncio.run(_jpeg_clients(args.port, args.viewers))
        return
    _base, webrtc, jpeg = asyncio.run(_box(args.viewers, args.window, args.ttff_runs))
    per_core = int(100.0 // max(webrtc, 0.01))
    print(f"webrtc_viewers_per_core: {per_core} cpu_pct_per_viewer: {webrtc:.2f} jpeg_cpu_pct_per_viewer: {jpeg:.2f}")


if __name__ == "__main__":
    main()
