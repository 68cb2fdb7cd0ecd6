"""The box's cameras as the API and the technician's page see them: each camera's driver with its
vision stage, the live viewers, and zones applied live after a reload."""

from __future__ import annotations

import asyncio
from typing import Any

from drivers.camera import Camera
from edge_config.model import GatewayConfig
from edge_config.site import LiveViewSettings
from gateway.camera_stage import CameraVision
from gateway.links import Links
from gateway.live_relay import StreamRelay
from gateway.live_view import LiveViews
from gateway.zones import apply_zones, zones_json

__all__ = ["CameraSet"]


class CameraSet:
    """Filled once by :meth:`attach` when the links are built; empty on a box without cameras."""

    def __init__(self, live: LiveViewSettings) -> None:
        self.cameras: dict[str, Camera] = {}
        self.stages: dict[str, CameraVision] = {}
        self._relays: dict[str, StreamRelay] = {}
        self.live_views = LiveViews(
            live, self.cameras, self._relays, fps=lambda cid: self.cameras[cid].config.stream.analysis_fps
        )
        # One zone edit at a time: each rewrites the site file and reloads it.
        self.zones_lock = asyncio.Lock()

    def attach(self, built: Links) -> None:
        self.cameras.update(built.cameras)
        self.stages.update(built.stages)
        self._relays.update(built.relays)

    def status(self) -> list[dict[str, Any]]:
        """``/api/v1/cameras``: the driver's view of each camera, with its vision stage's."""
        return [cam.status() | self.stages[cid].status() for cid, cam in self.cameras.items()]

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self.cameras

    async def snapshot(self, camera_id: str) -> bytes | None:
        cam = self.cameras.get(camera_id)
        return None if cam is None else await cam.live_jpeg()

    def motion_json(self, camera_id: str) -> dict[str, Any]:
        return self.stages[camera_id].motion_json()

    def zones_json(self, camera_id: str) -> dict[str, Any]:
        return zones_json(self.cameras[camera_id].config)

    def apply_zones(self, new: GatewayConfig) -> int:
        return apply_zones(new, self.cameras, self.stages)
