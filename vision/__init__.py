"""On-box vision: fused numba motion detection and camera-tamper detection.

Frames go in as the decoded luma plane (uint8, C-contiguous), optionally with the chroma planes;
structured results and events come out. Every ``process`` call is synchronous and CPU-bound and its
kernels release the GIL: call it through ``asyncio.to_thread``, one thread per stream.

Typical use for one camera::

    det = MotionDetector(settings.profiles.day, luma.shape, settings.zones)
    events = MotionEvents(settings.events, luma.shape, settings.zones)
    tamper = TamperDetector(settings.tamper, luma.shape)
    for luma, t in frames:
        out = tamper.process(luma, t)
        out += events.update(det.process(luma, t), luma, suppressed=tamper.analysis_suppressed)
"""

from vision._events import BestFrame, MotionEvents, VisionEvent
from vision._evidence import draw_comparison, draw_evidence, planes_to_bgr
from vision._motion import Box, MotionDetector, MotionResult, rasterise_zones
from vision._profiles import IrModeTracker, active_profile
from vision._tamper import TAMPER_KINDS, TamperDetector
from vision._warm import warm_up

__all__ = [
    "TAMPER_KINDS",
    "BestFrame",
    "Box",
    "IrModeTracker",
    "MotionDetector",
    "MotionEvents",
    "MotionResult",
    "TamperDetector",
    "VisionEvent",
    "active_profile",
    "draw_comparison",
    "draw_evidence",
    "planes_to_bgr",
    "rasterise_zones",
    "warm_up",
]
