"""Streaming sensor-anomaly detection: one small, typed detector per (device, point).

>>> from anomaly import make_detector
>>> det = make_detector()           # the benchmarked ensemble, default settings
>>> score = det.update(21.5, t=1_700_000_000.0)
"""

from anomaly._detector import PointDetector, make_detector

__all__ = ["PointDetector", "make_detector"]
