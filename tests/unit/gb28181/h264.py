"""A small H.264 clip (Annex B access units) made with PyAV's libx264, for the PS/RTP tests, and a
video source of the channel's live sessions made of a function."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import av
import numpy as np

from gateway.gb28181.live import AccessUnit


@functools.cache
def clip(frames: int = 30, width: int = 320, height: int = 180, gop: int = 10) -> tuple[tuple[bytes, bool], ...]:
    """``frames`` access units (bytes, is_key) of a white bar moving over black, no B-frames."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.framerate = 25  # type: ignore[assignment]
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop), "bf": "0"}
    out: list[tuple[bytes, bool]] = []
    for i in range(frames):
        img = np.zeros((height, width, 3), np.uint8)
        x = (i * 8) % (width - 20)
        img[:, x : x + 20] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), bool(p.is_keyframe)) for p in codec.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in codec.encode(None)]
    return tuple(out)


@dataclass(frozen=True)
class Frames:
    """A :class:`gateway.gb28181.live.VideoSource` whose every camera streams ``codec``: the access
    units ``frames(device)`` yields."""

    frames: Callable[[str], AsyncIterator[AccessUnit]]
    streams: str = "h264"

    def codec(self, _device: str) -> str | None:
        return self.streams

    def open(self, device: str) -> AsyncIterator[AccessUnit]:
        return self.frames(device)
