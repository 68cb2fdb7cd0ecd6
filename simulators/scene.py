"""The demo scene: a yard at dusk, someone walks through the zone, then the lights switch on.

Generated once and encoded with PyAV to H.264 (640x360, 25 fps, GOP 25, no B-frames) so the RTSP
server can serve it without re-encoding, and the benchmark and tests can decode it.

``python -m simulators.scene OUT.mp4 [--seconds S]``
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["SCENE_ZONE", "SceneTimeline", "encode_scene", "scene_frames"]

WIDTH, HEIGHT, FPS, GOP = 640, 360, 25, 25

# The zone the walker crosses, in normalised (x, y) frame coordinates (a gate in the middle).
SCENE_ZONE: tuple[tuple[float, float], ...] = ((0.40, 0.35), (0.62, 0.35), (0.62, 0.95), (0.40, 0.95))


@dataclasses.dataclass(frozen=True)
class SceneTimeline:
    """When things happen, in seconds from the start of the clip."""

    walk_start: float = 2.0
    walk_end: float = 8.0
    lights_on: float = 10.0
    seconds: float = 12.0


def _background(rng: np.random.Generator) -> np.ndarray:
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    sky = 60 + 40 * (1 - y) + 6 * np.sin(x * 12)
    img = np.repeat(sky[:, :, None], 3, axis=2)
    img[int(HEIGHT * 0.55) :, :, :] = (70, 80, 75)  # ground
    img[120:250, 40:200] = (95, 90, 110)  # a house
    img[150:190, 70:110] = (40, 45, 60)  # its window
    img[140:330, 440:460] = (80, 70, 60)  # a gate post
    img[140:330, 600:620] = (80, 70, 60)
    # Foliage-like fixed texture: the detail a real scene has and an encoder must spend bits on.
    texture = rng.normal(0, 14.0, (HEIGHT // 2, WIDTH // 2, 1)).astype(np.float32)
    img += np.repeat(np.repeat(texture, 2, axis=0), 2, axis=1)
    return img


def scene_frames(
    timeline: SceneTimeline = SceneTimeline(),
    seed: int = 7,
) -> Iterator[tuple[float, np.ndarray]]:
    """(t, RGB uint8 frame) for every frame of the scene."""
    rng = np.random.default_rng(seed)
    bg = _background(rng)
    n = round(timeline.seconds * FPS)
    for i in range(n):
        t = i / FPS
        img = bg.copy()
        if timeline.walk_start <= t <= timeline.walk_end:
            p = (t - timeline.walk_start) / (timeline.walk_end - timeline.walk_start)
            cx = int(-40 + p * (WIDTH + 80))
            stride = int(6 * np.sin(t * 9))
            top = 190
            img[top : top + 28, max(cx - 10, 0) : max(cx + 10, 0)] = (200, 170, 150)  # head
            img[top + 28 : top + 95, max(cx - 16, 0) : max(cx + 16, 0)] = (30, 50, 140)  # coat
            img[top + 95 : top + 150, max(cx - 14 + stride, 0) : max(cx - 3 + stride, 0)] = (35, 35, 35)
            img[top + 95 : top + 150, max(cx + 3 - stride, 0) : max(cx + 14 - stride, 0)] = (35, 35, 35)
        if t >= timeline.lights_on:
            img = img * 1.7 + 35
        img += rng.normal(0, 3.0, img.shape).astype(np.float32)  # sensor grain
        yield t, np.clip(img, 0, 255).astype(np.uint8)


def encode_scene(out: Path, timeline: SceneTimeline = SceneTimeline(), bitrate_kbps: int = 768) -> Path:
    """Encode the scene to ``out`` (.mp4 or .mkv) as H.264 at about ``bitrate_kbps``.

    768 kbit/s is typical of a camera's 640x360 sub stream; returns ``out``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    fmt = "mp4" if out.suffix == ".mp4" else "matroska"
    with av.open(str(tmp), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.max_b_frames = 0
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.bit_rate = bitrate_kbps * 1000
        stream.options = {
            "maxrate": f"{bitrate_kbps}k",
            "bufsize": f"{2 * bitrate_kbps}k",
            "preset": "veryfast",
            "keyint_min": str(GOP),
            "sc_threshold": "0",
            "profile": "main",
        }
        for _, rgb in scene_frames(timeline):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    tmp.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Encode the demo scene to H.264.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    encode_scene(args.out, SceneTimeline(seconds=args.seconds))
    print(args.out)


if __name__ == "__main__":
    main()
