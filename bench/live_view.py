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

The last line is ``webrtc_viewers_per_core: N cpu_pct_per_viewer: X jpeg_cpu_pct_per_viewer: Y``
where N is 100 / X rounded down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from drivers.camera import _encode_jpeg
from drivers.rtsp import DecodedFrame, RtspIngest
from edge_config.site import LiveViewSettings
from gateway.live_view import _OFFERED, LiveViewRefused, LiveViews, StreamRelay, _install_address_lister
from simulators.scene import SceneTimeline, encode_scene

_SETTLE_S = 4.0


def _clip() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-gateway-bench"
    path = cache / "scene-640x360-gop25-768k.mp4"
    if not path.exists():
        try:
            encode_scene(path, SceneTimeline(seconds=12.0))
        except OSError:
            path = encode_scene(Path(tempfile.mkdtemp()) / "scene.mp4", SceneTimeline(seconds=12.0))
    return path


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


async def _box(viewers: int, window: float) -> tuple[float, float, float]:
    camera = _Latest()
    relay = StreamRelay("bench", asyncio.get_running_loop())
    ingest = RtspIngest("bench", str(_clip()), display_url="clip", analysis_fps=5.0, replay=True)
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
    ingest_task = asyncio.create_task(ingest.run(camera.sink), name="bench.ingest")
    try:
        await asyncio.sleep(_SETTLE_S)
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
    parser.add_argument("--client", choices=("webrtc", "jpeg"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client == "webrtc":
        asyncio.run(_webrtc_clients(args.port, args.viewers))
        return
    if args.client == "jpeg":
        asyncio.run(_jpeg_clients(args.port, args.viewers))
        return
    _base, webrtc, jpeg = asyncio.run(_box(args.viewers, args.window))
    per_core = int(100.0 // max(webrtc, 0.01))
    print(f"webrtc_viewers_per_core: {per_core} cpu_pct_per_viewer: {webrtc:.2f} jpeg_cpu_pct_per_viewer: {jpeg:.2f}")


if __name__ == "__main__":
    main()
