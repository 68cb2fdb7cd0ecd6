"""On-box vision: fused numba motion detection and camera-tamper detection."""

from vision._motion import Box, MotionDetector, MotionResult, rasterise_zones

__all__ = ["Box", "MotionDetector", "MotionResult", "rasterise_zones"]
