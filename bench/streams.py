"""Streams per core: N concurrent 640x360 H.264 streams decoded and analysed, against cv2.VideoCapture.

Usage: ``python -m bench.streams [--window S] [--max-keyframe N] [--max-full N] [--quick]``.

The stream is the demo scene (:mod:`simulators.scene`: 640x360, 25 fps, GOP 25, H.264), encoded
once and replayed **in real time and in a loop** by the gateway's own ingest
(:class:`drivers.rtsp.RtspIngest` with ``replay=True``: same demux, decoder settings, luma hand-off
and worker thread per stream as for RTSP, without a server process competing for the same two
cores). Every frame handed over goes through the camera's whole vision stage, as in the daemon
(:class:`gateway.camera_stage.CameraVision`, default settings, one per stream: tamper checks at most
every 0.2 s, motion, motion events, the IR-mode tracker) in the stream's worker thread. The
cv2.VideoCapture peer hands its frames to the same stage (luma only: it decodes to BGR).

1. Calibration, one stream at a time as fast as it decodes, CPU seconds per second of video:
   ours keyframe-only (``skip_frame=NONKEY``) + the vision stage on each key frame (1 fps); ours
   all frames decoded + the vision stage at 5 fps; ``cv2.VideoCapture`` (FFmpeg backend, one thread) grabbing every
   frame and retrieving + analysing 1 or 5 per second. This predicts streams per core.
2. Concurrent runs, real time: N streams for ``--window`` seconds while an aiohttp ``/healthz`` on
   the same event loop is polled every 100 ms. A run passes when the median stream reaches the
   analysis rate (at least 95 %), the slowest at least 75 %, and ``/healthz`` answers within
   100 ms at worst. N starts at the prediction, goes up 20 % while runs pass and down 15 % while
   they fail; the figure is the largest N that passed. cv2.VideoCapture gets the same search.

The last line is ``keyframe_streams@1fps: N  full_decode_streams@5fps: M  vs_cv2: R`` where N and
M are the largest passing concurrent runs and R is N over the largest passing concurrent run of
cv2.VideoCapture at 1 fps (grab every frame, retrieve one a second), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import cv2
import numpy as np
from aiohttp import web

from bench._peers import scene_clip
from drivers.rtsp import DecodedFrame, RtspIngest
from edge_config.camera import CameraDevice
from gateway.camera_stage import CameraVision
from simulators.scene import FPS
from vision import warm_up

CORES = os.cpu_count() or 1


def _camera_stage(name: str) -> CameraVision:
    """A camera's vision stage with the default settings; its signals go nowhere."""
    return CameraVision(CameraDevice(kind="onvif", id=name, host="127.0.0.1"), lambda _signal: None)


def _check_stages(stages: list[CameraVision]) -> None:
    """A stage that rejected frames would make the figures look better than they are."""
    errors = sum(s.errors for s in stages)
    if errors:
        msg = f"the vision stage rejected {errors} frames; the figures would not be comparable"
        raise RuntimeError(msg)


def _grey_frame(bgr: np.ndarray, t: float) -> DecodedFrame:
    """What the cv2 peer hands the stage: the luma of its BGR frame (it decodes no chroma planes)."""
    return DecodedFrame("cv2", t, np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8), True)


def _cpu() -> float:
    # CPU time of the whole process (every thread), nanosecond clock: os.times() ticks in 10 ms.
    return time.process_time()


# --- 1. calibration -------------------------------------------------------------------------


def _ours_cost(path: Path, keyframes: bool, fps: float, seconds: float) -> float:
    """CPU s per s of video: decode (key frames only, or all) and analyse at ``fps``."""
    import av

    from drivers.rtsp import frame_planes

    stage = _camera_stage("calibration")
    every = max(1, round(FPS / fps))
    frames = 0
    start = _cpu()
    video_s = 0.0
    while video_s < seconds:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.codec_context.thread_count = 1
            if keyframes:
                s.codec_context.skip_frame = "NONKEY"
            n = 0
            for packet in c.demux(s):
                if packet.size:
                    n += 1
                for frame in packet.decode():
                    if keyframes or frames % every == 0:
                        # the planes as the ingest hands them over
                        y, uv = frame_planes(frame)
                        stage.process(DecodedFrame("calibration", frames / FPS, y, True, uv))
                    frames += 1
            video_s += n / FPS
    _check_stages([stage])
    return (_cpu() - start) / video_s


def _cv2_cost(path: Path, fps: float, seconds: float) -> float:
    """CPU s per s of video for cv2.VideoCapture: grab every frame, retrieve and analyse at ``fps``."""
    stage = _camera_stage("cv2")
    every = max(1, round(FPS / fps))
    start = _cpu()
    video_s = 0.0
    i = 0
    while video_s < seconds:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        n = 0
        while cap.grab():
            if n % every == 0:
                ok, bgr = cap.retrieve()
                if ok:
                    stage.process(_grey_frame(bgr, i / FPS))
            n += 1
            i += 1
        cap.release()
        video_s += n / FPS
    _check_stages([stage])
    return (_cpu() - start) / video_s


# --- 2. concurrent real-time runs ---------------------------------------------------------------


@dataclass
class RunResult:
    streams: int
    target_fps: float
    median_fps: float
    min_fps: float
    cpu_cores: float
    healthz_p50_ms: float
    healthz_max_ms: float

    @property
    def passed(self) -> bool:
        return (
            self.median_fps >= 0.95 * self.target_fps
            and self.min_fps >= 0.75 * self.target_fps
            and self.healthz_max_ms < 100.0
        )


async def _healthz_app() -> tuple[web.AppRunner, int]:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    port = int(server.sockets[0].getsockname()[1]) if server is not None else 0  # type: ignore[attr-defined]
    return runner, port


def _cv2_worker(path: Path, fps: float, stage: CameraVision, counts: list[int], i: int, stop: threading.Event) -> None:
    """cv2.VideoCapture at the stream's own pace: grab every frame, retrieve and analyse at ``fps``."""
    every = max(1, round(FPS / fps))
    base = time.monotonic()
    n = 0
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        while not stop.is_set():
            if not cap.grab():
                cap.release()
                cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
                continue
            n += 1
            if n % every == 0:
                ok, bgr = cap.retrieve()
                if ok:
                    stage.process(_grey_frame(bgr, n / FPS))
                    counts[i] += 1
            if stop.wait(max(0.0, base + n / FPS - time.monotonic())):
                break
    finally:
        cap.release()


async def _concurrent(
    path: Path, n: int, keyframes: bool, fps: float, warm_s: float, window_s: float, use_cv2: bool = False
) -> RunResult:
    if use_cv2:
        return await _concurrent_cv2(path, n, fps, warm_s, window_s)
    runner, port = await _healthz_app()
    ingests = [
        RtspIngest(
            f"bench-{i}",
            str(path),
            display_url="scene",
            keyframes_only=keyframes,
            analysis_fps=fps,
            replay=True,
            stall_timeout_s=30.0,
            open_timeout_s=30.0,
        )
        for i in range(n)
    ]
    stages = [_camera_stage(f"bench-{i}") for i in range(n)]
    tasks = [asyncio.create_task(ing.run(stage.process)) for ing, stage in zip(ingests, stages, strict=True)]
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            await _poll(http, port, time.monotonic() + warm_s, None)
            before = [ing.stats.frames_delivered for ing in ingests]
            cpu0, t0 = _cpu(), time.monotonic()
            await _poll(http, port, t0 + window_s, latencies)
            cpu1, t1 = _cpu(), time.monotonic()
            after = [ing.stats.frames_delivered for ing in ingests]
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await runner.cleanup()
    _check_stages(stages)
    return _result(n, fps, before, after, cpu1 - cpu0, t1 - t0, latencies)


async def _concurrent_cv2(path: Path, n: int, fps: float, warm_s: float, window_s: float) -> RunResult:
    runner, port = await _healthz_app()
    stop = threading.Event()
    counts = [0] * n
    stages = [_camera_stage(f"cv2-{i}") for i in range(n)]
    threads = [
        threading.Thread(target=_cv2_worker, args=(path, fps, stages[i], counts, i, stop), daemon=True)
        for i in range(n)
    ]
    for t in threads:
        t.start()
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            await _poll(http, port, time.monotonic() + warm_s, None)
            before = list(counts)
            cpu0, t0 = _cpu(), time.monotonic()
            await _poll(http, port, t0 + window_s, latencies)
            cpu1, t1 = _cpu(), time.monotonic()
            after = list(counts)
    finally:
        stop.set()
        for t in threads:
            await asyncio.to_thread(t.join, 5.0)
        await runner.cleanup()
    _check_stages(stages)
    return _result(n, fps, before, after, cpu1 - cpu0, t1 - t0, latencies)


async def _poll(http: aiohttp.ClientSession, port: int, until: float, latencies: list[float] | None) -> None:
    while time.monotonic() < until:
        t0 = time.monotonic()
        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
            await r.read()
        if latencies is not None:
            latencies.append((time.monotonic() - t0) * 1000)
        await asyncio.sleep(0.1)


def _result(
    n: int, fps: float, before: list[int], after: list[int], cpu: float, wall: float, latencies: list[float]
) -> RunResult:
    rates = [(a - b) / wall for a, b in zip(after, before, strict=True)]
    return RunResult(
        streams=n,
        target_fps=fps,
        median_fps=statistics.median(rates),
        min_fps=min(rates),
        cpu_cores=cpu / wall,
        healthz_p50_ms=statistics.median(latencies) if latencies else float("inf"),
        healthz_max_ms=max(latencies) if latencies else float("inf"),
    )


async def _search(
    path: Path,
    label: str,
    start: int,
    keyframes: bool,
    fps: float,
    warm_s: float,
    window_s: float,
    use_cv2: bool = False,
    cap: int = 1000,
) -> tuple[int, list[RunResult]]:
    """Largest N that passes: start at the prediction, 20 % up while passing, 15 % down while failing."""
    results: list[RunResult] = []
    n = max(1, start)
    best = 0
    for _ in range(7):
        r = await _concurrent(path, n, keyframes, fps, warm_s, window_s, use_cv2)
        results.append(r)
        print(
            f"  {label:<22} N={r.streams:>4}  median {r.median_fps:5.2f} fps  min {r.min_fps:5.2f} fps  "
            f"CPU {r.cpu_cores:4.2f} cores ({100 * r.cpu_cores / r.streams:5.2f} % of a core per stream)  "
            f"/healthz p50 {r.healthz_p50_ms:5.1f} ms max {r.healthz_max_ms:5.1f} ms  "
            f"{'PASS' if r.passed else 'fail'}",
            flush=True,
        )
        if r.passed:
            best = max(best, n)
            if n >= cap or any(not x.passed and x.streams <= int(n * 1.2) for x in results):
                break
            n = min(cap, int(n * 1.2) + 1)  # passed: try 20 % more
        else:
            if best:
                break
            n = max(1, int(n * 0.85))  # failed: step down 15 %
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=8.0, help="measured seconds per concurrent run")
    parser.add_argument("--warm", type=float, default=4.0, help="seconds before measuring")
    parser.add_argument("--calibrate", type=float, default=24.0, help="seconds of video per calibration")
    parser.add_argument("--max-keyframe", type=int, default=400)
    parser.add_argument("--max-full", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test, not figures)")
    args = parser.parse_args()
    if args.quick:
        args.window, args.warm, args.calibrate, args.max_keyframe, args.max_full = 3.0, 2.0, 6.0, 8, 4
    cv2.setNumThreads(1)
    warm_up()
    path = scene_clip()
    print(f"clip: {path.name} (640x360, {FPS} fps, GOP 25, H.264); {CORES} cores", flush=True)

    print("calibration: CPU seconds per second of video, one stream, single thread", flush=True)
    _ours_cost(path, True, 1.0, 2.0)  # first-call costs (decoder, detector buffers) out of the figures
    _ours_cost(path, False, 5.0, 2.0)
    _cv2_cost(path, 1.0, 2.0)
    costs = {
        "ours keyframes @1fps": _ours_cost(path, True, 1.0, args.calibrate),
        "ours all frames @5fps": _ours_cost(path, False, 5.0, args.calibrate),
        "cv2 grab all @1fps": _cv2_cost(path, 1.0, args.calibrate),
        "cv2 grab all @5fps": _cv2_cost(path, 5.0, args.calibrate),
    }
    print(f"  {'path':<24} {'CPU s / video s':>16} {'streams per core':>17}")
    for name, cost in costs.items():
        print(f"  {name:<24} {cost:>16.4f} {1 / cost:>17.1f}")
    vs_cv2 = costs["cv2 grab all @1fps"] / costs["ours keyframes @1fps"]
    vs_cv2_full = costs["cv2 grab all @5fps"] / costs["ours all frames @5fps"]

    print(f"concurrent real-time runs ({args.window:g} s windows, /healthz polled every 100 ms)", flush=True)
    pred_kf = min(args.max_keyframe, int(0.85 * CORES / costs["ours keyframes @1fps"]))
    pred_full = min(args.max_full, int(0.85 * CORES / costs["ours all frames @5fps"]))
    kf_n, _ = asyncio.run(
        _search(path, "keyframes @1fps", pred_kf, True, 1.0, args.warm, args.window, cap=args.max_keyframe)
    )
    full_n, _ = asyncio.run(
        _search(path, "all frames @5fps", pred_full, False, 5.0, args.warm, args.window, cap=args.max_full)
    )
    pred_cv2 = min(args.max_keyframe, int(0.85 * CORES / costs["cv2 grab all @1fps"]))
    cv2_n, _ = asyncio.run(
        _search(path, "cv2 grab all @1fps", pred_cv2, False, 1.0, args.warm, args.window, True, args.max_keyframe)
    )
    measured = kf_n / cv2_n if cv2_n else float("inf")
    print(
        f"per-stream CPU, ours vs cv2: {vs_cv2:.2f}x at 1 fps (key frames vs grab all), "
        f"{vs_cv2_full:.2f}x at 5 fps (both decode every frame)"
    )
    print(f"concurrent streams at 1 fps, ours vs cv2: {kf_n} vs {cv2_n} = {measured:.2f}x")
    print(f"keyframe_streams@1fps: {kf_n}  full_decode_streams@5fps: {full_n}  vs_cv2: {measured:.2f}")


if __name__ == "__main__":
    main()
