"""Evidence for a sensor anomaly: the readings around the onset as JSON, and a small plot of them."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np

from edge_core.signals import Evidence, EvidenceSink
from gateway.incidents import iso_time
from gateway.rules import AnomalyWindow

__all__ = ["store_window", "window_json", "window_png"]

_W, _H, _PAD = 480, 200, 24


def store_window(store: EvidenceSink, w: AnomalyWindow) -> Evidence:
    """Store the window as JSON, with its plot as the preview people see. Blocking file I/O."""
    plot = store.put(window_png(w), "image/png", "plot of the readings around the onset")
    data = store.put(window_json(w), "application/json", "readings around the onset")
    return dataclasses.replace(data, preview=plot.ref)


def window_json(w: AnomalyWindow) -> bytes:
    return json.dumps(
        {
            "device": w.device,
            "point": w.point,
            "rule": w.rule,
            "detector": w.detector,
            "threshold": w.threshold,
            "onset": iso_time(w.onset),
            "columns": ["time", "value", "score"],
            "readings": [[iso_time(t), v, round(s, 4)] for t, v, s in w.readings],
        }
    ).encode()


def window_png(w: AnomalyWindow) -> bytes:
    """Values as a line, anomalous readings in red, the onset as a vertical line."""
    img = np.full((_H, _W, 3), 255, np.uint8)
    t = np.array([r[0] for r in w.readings])
    v = np.array([r[1] for r in w.readings])
    s = np.array([r[2] for r in w.readings])
    t_span = max(float(t[-1] - t[0]), 1e-9)
    lo, hi = float(v.min()), float(v.max())
    v_span = max(hi - lo, 1e-9)
    xs = (_PAD + (t - t[0]) / t_span * (_W - 2 * _PAD)).astype(np.int32)
    ys = (_H - _PAD - (v - lo) / v_span * (_H - 2 * _PAD)).astype(np.int32)
    onset_x = int(_PAD + (w.onset - t[0]) / t_span * (_W - 2 * _PAD))
    cv2.line(img, (onset_x, _PAD // 2), (onset_x, _H - _PAD // 2), (60, 60, 220), 1)
    cv2.polylines(img, [np.stack([xs, ys], axis=1)], False, (160, 90, 30), 1, cv2.LINE_AA)
    for x, y, score in zip(xs, ys, s, strict=True):
        if score >= w.threshold:
            cv2.circle(img, (int(x), int(y)), 3, (40, 40, 210), -1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, f"{w.device}/{w.point}  {hi:.4g}", (4, 14), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.4g}   onset {iso_time(w.onset)}", (4, _H - 6), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return bytes(png)
