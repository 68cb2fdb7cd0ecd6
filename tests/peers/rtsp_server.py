"""A real RTSP server for tests and the demo: GStreamer's gst-rtsp-server, through python3-gi.

Run it with Debian's interpreter (the venv has no GObject bindings)::

    /usr/bin/python3 tests/peers/rtsp_server.py --port 8554 --clip scene.mp4

Mounts:

- ``/clip``, ``/main``, ``/sub``: the H.264 clip, looped for ever **without re-encoding**: its
  access units are read once (qtdemux/matroskademux + h264parse into an appsink) and pushed
  again and again through an appsrc with timestamps that keep increasing, so a client sees one
  endless stream.
- ``/live``: a live test pattern encoded by x264enc (costs CPU; for a quick look only).

Prints ``READY <port>`` on stdout once clients may connect. Debian packages: gstreamer1.0-rtsp,
gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-base, gstreamer1.0-plugins-good,
gstreamer1.0-plugins-bad (h264parse), gstreamer1.0-plugins-ugly (x264enc, only for ``/live``).

This file must stay importable by a plain Python 3 without the project's dependencies.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Clip = tuple[str, list[tuple[bytes, int, int, bool]], int]


def load_clip(path: str) -> Clip:
    """(caps, [(access unit, pts ns, duration ns, is_delta)], clip duration ns)."""
    demux = "matroskademux" if path.endswith((".mkv", ".webm")) else "qtdemux"
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! {demux} ! h264parse config-interval=-1 ! '
        "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[tuple[bytes, int, int, bool]] = []
    caps = ""
    while True:
        sample = sink.emit("try-pull-sample", 5 * Gst.SECOND)
        if sample is None:
            break
        buf = sample.get_buffer()
        if not caps:
            caps = sample.get_caps().to_string()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            units.append((bytes(info.data), buf.pts, buf.duration, bool(buf.get_flags() & Gst.BufferFlags.DELTA_UNIT)))
            buf.unmap(info)
    pipeline.set_state(Gst.State.NULL)
    if not units:
        raise SystemExit(f"no H.264 access units in {path}")
    first = units[0][1] if units[0][1] != Gst.CLOCK_TIME_NONE else 0
    frame_ns = units[0][2] if units[0][2] not in (0, Gst.CLOCK_TIME_NONE) else Gst.SECOND // 25
    fixed = []
    for i, (data, pts, dur, delta) in enumerate(units):
        p = pts - first if pts != Gst.CLOCK_TIME_NONE else i * frame_ns
        fixed.append((data, p, dur if dur not in (0, Gst.CLOCK_TIME_NONE) else frame_ns, delta))
    total = max(p + d for _, p, d, _ in fixed)
    return caps, fixed, total


class _Feeder:
    """Feeds one client's appsrc with the clip, looping, with ever-increasing timestamps."""

    def __init__(self, clip: Clip) -> None:
        self.caps, self.units, self.total = clip
        self.index = 0
        self.loop = 0

    def need_data(self, src: Gst.Element, _length: int) -> None:
        data, pts, dur, delta = self.units[self.index]
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = buf.dts = self.loop * self.total + pts
        buf.duration = dur
        if delta:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        src.emit("push-buffer", buf)
        self.index += 1
        if self.index == len(self.units):
            self.index = 0
            self.loop += 1


def _clip_factory(clip: Clip) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( appsrc name=src is-live=false format=time caps="{clip[0]}" ! '
        "h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)

    def configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_child_by_name("src")
        feeder = _Feeder(clip)
        src.connect("need-data", feeder.need_data)
        media._feeder = feeder  # keep it alive with the media

    factory.connect("media-configure", configure)
    return factory


def _live_factory(width: int, height: int, fps: int) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "bitrate=600 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description="GStreamer RTSP server for the gateway's tests and demo.")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--clip", help="H.264 clip (.mp4/.mkv) served at /clip, /main and /sub")
    parser.add_argument("--no-live", action="store_true", help="do not offer /live (x264enc)")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    if args.clip:
        clip = load_clip(args.clip)
        factory = _clip_factory(clip)
        for path in ("/clip", "/main", "/sub"):
            mounts.add_factory(path, factory)
    if not args.no_live:
        mounts.add_factory("/live", _live_factory(640, 360, 25))
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on {args.address}:{args.port}")
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)

    # Exit when the parent closes our stdin (a test process that died must not leave us behind).
    def watch_stdin() -> None:
        sys.stdin.read()
        GLib.idle_add(loop.quit)

    if not sys.stdin.isatty():
        threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
