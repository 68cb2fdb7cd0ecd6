"""The daemon: the incident commit path and the lifecycle of everything else, under one TaskGroup.

What it supervises is built from the site file by :mod:`gateway.links`; link-offline tracking and
PLC alarms are :mod:`gateway.device_signals`; the HTTP side is :mod:`gateway.api`, which sees the
gateway only through :class:`gateway.api.GatewayView`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from drivers.base import Reading
from edge_config import LoadedConfig
from edge_config.camera import CameraDevice
from edge_config.model import GatewayConfig
from edge_core.errors import OutboxError
from edge_core.ratelimit import RateLimitedLogger
from edge_core.signals import Signal
from edge_core.tasks import TaskSet, await_stopped, in_daemon_thread, unless_stopped
from gateway.api import ApiServer
from gateway.cameras import CameraSet
from gateway.device_signals import HaltWatch, LinkWatch, OverflowWatch, StorageWatch, alarm_signal
from gateway.envelope import incident_event, place_of
from gateway.evidence import EvidenceStore
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.telemetry import channel_status
from gateway.housekeeping import Housekeeping
from gateway.incidents import Change, Feedback, IncidentManager, IncidentStatus, RoutingPolicy, incident_data
from gateway.links import build_links, push_consumers
from gateway.metrics import Metrics
from gateway.notify import Notifier
from gateway.outbox import Outbox, StorageFullError
from gateway.reload import reread, resume_halted
from gateway.roles import role_tokens
from gateway.rules import AnomalyWindow, RuleEngine
from gateway.sensor_evidence import store_window
from gateway.supervisor import Supervisor, SupervisorHealth
from gateway.warm import warm_kernels
from gateway.zones import ZoneSpec, save_zones

__all__ = ["Gateway", "default_state_dir"]

log = logging.getLogger(__name__)

_STOP_FLUSH_S = 3.0
_STOP_DRIVERS_S = 3.0
# Signals that come from detectors rather than [[rules]] (vision, camera events, links, alarms)
# are debounced by their detectors already; the short cooldown only absorbs flapping, so that two
# people crossing a gate a minute apart are two incidents, not one.
_DETECTOR_POLICY = RoutingPolicy(cooldown_s=5.0, update_interval_s=60.0)


def default_state_dir(cfg: GatewayConfig) -> Path:
    if cfg.state_dir is not None:
        return cfg.state_dir
    env = os.environ.get("STATE_DIRECTORY")
    # systemd may pass several ':'-separated directories; ours is the first.
    return Path(env.split(":")[0]) if env else Path("/var/lib/edge-gateway")


class Gateway:
    """One box's gateway. Build it, then ``await run(stop)``; the API reaches it through
    :class:`gateway.api.GatewayView`, detectors through ``signal``."""

    def __init__(self, loaded: LoadedConfig, *, state_dir: Path | None = None) -> None:
        self.loaded = loaded
        cfg = self.config = loaded.config
        self.state_dir = state_dir or default_state_dir(cfg)
        self.metrics = Metrics()
        self.notifier = Notifier()
        self.api_token = cfg.api.token.read(loaded.base_dir).get_secret_value()
        self.tokens = role_tokens(loaded)
        self.outbox = Outbox(
            self.state_dir / "outbox.sqlite3",
            budget_bytes=int(cfg.outbox.budget_mb * 1024 * 1024),
            keep_delivered_s=cfg.outbox.keep_delivered_days * 86400,
            commit_interval_s=cfg.outbox.commit_interval_ms / 1000,
            consumers=push_consumers(cfg),
            metrics=self.metrics,
            on_overflow=lambda _n: self.overflow.dropped(self.outbox.dropped_total),
            on_storage=self._storage_changed,
        )
        self.incidents = IncidentManager(
            default_department=cfg.site.default_department,
            policy_for=self._policy,
            department_for_device={d.id: d.department for d in cfg.devices}.get,
        )
        self._places = {d.id: place_of(cfg, d.id) for d in cfg.devices}
        self.evidence_store = EvidenceStore(self.state_dir / "evidence", int(cfg.evidence.budget_mb * 1024 * 1024))
        self.rules = RuleEngine(
            cfg.rules,
            # Rules judge readings; cameras send none (they report their own offline state).
            [d.id for d in cfg.devices if not isinstance(d, CameraDevice)],
            self.signal,
            time.time(),
            on_evidence=self._anomaly_evidence,
            saved_state=self.outbox.get_kv,
        )
        self._background = TaskSet()
        self.supervisors: list[Supervisor] = []
        self.camera_set = CameraSet(cfg.api.live_view)
        self.gb28181: dict[str, Gb28181Channel] = {}
        """The GB/T 28181 channels by their table's id (the status page shows their state)."""
        self.link_watch = LinkWatch(cfg.site.link_offline_s, self.signal)
        self.overflow = OverflowWatch(cfg.site.box_id, self.signal)
        self.halts = HaltWatch(cfg.site.box_id, self.signal)
        self.storage = StorageWatch(cfg.site.box_id, self.signal)
        self.housekeeping = Housekeeping(
            self.rules, self.incidents, self.outbox, self.metrics, self.notifier, self.supervisors, self._watch
        )
        self._refused_log = RateLimitedLogger(log)
        self.started = time.time()
        # Set once the API listens and every link is supervised; cleared when stopping.
        self.ready = asyncio.Event()

    def _policy(self, rule_id: str) -> RoutingPolicy:
        r = self.rules.rule(rule_id)
        return _DETECTOR_POLICY if r is None else RoutingPolicy(r.cooldown_s, r.update_interval_s)

    def source(self, device: str) -> str:
        return f"{self.config.site.source_prefix}:{self.config.site.box_id}/{device}"

    def reload(self) -> asyncio.Task[None]:
        """SIGHUP: see :mod:`gateway.reload`. The file is reread in the returned task."""
        resume_halted(self.supervisors, self.outbox)

        async def reread_file() -> None:
            new = await reread(self.loaded, self.rules, self.camera_set)
            if new is not None:
                self.loaded, self.config = new, new.config

        return self._background.spawn(reread_file(), "gw[core].reload")

    async def save_zones(self, camera_id: str, zones: list[ZoneSpec]) -> dict[str, Any]:
        """Write the camera's zones into the site file (checked, with a backup) and reload as
        SIGHUP does; :class:`gateway.zones.ZoneError` says why nothing was written."""
        async with self.camera_set.zones_lock:
            backup = await asyncio.to_thread(save_zones, self.loaded, camera_id, zones)
            # reread before answering: the page says the saved zones are in force, and a second
            # save must start from this one's file
            await self.reload()
        log.info("zones of camera %s saved by the page (backup %s)", camera_id, backup.name)
        return self.camera_set.zones_json(camera_id) | {"backup": backup.name}

    # -- the incident path -----------------------------------------------------------------

    def on_reading(self, r: Reading) -> None:
        counts = self.metrics.readings.values
        counts[r.device] = counts.get(r.device, 0) + 1
        self.rules.ingest(r, time.time())

    def signal(self, sig: Signal) -> None:
        """Entry point for every detector (rules, vision, anomaly, camera events, links)."""
        change = self.incidents.apply(sig)
        if change is not None:
            self._commit(change)

    async def acknowledge(self, incident_id: str, fb: Feedback) -> dict[str, Any]:
        """Apply the platform's acknowledgement and return once it is durable: the platform does
        not retry after a 200, so an answer given before the commit could be lost to a crash."""
        change = self.incidents.acknowledge(incident_id, fb)
        self._commit(change)
        await self.outbox.flush()
        return self._incident_data(change.incident)

    async def close(self, incident_id: str, fb: Feedback) -> dict[str, Any]:
        """As :meth:`acknowledge`, for the platform's closure."""
        change = self.incidents.close(incident_id, fb)
        if self.incidents.is_live(incident_id) or change.kind is not None:
            self._commit(change)
        await self.outbox.flush()
        return self._incident_data(change.incident)

    def incident_json(self, incident_id: str) -> dict[str, Any]:
        return self._incident_data(self.incidents.get(incident_id))

    def incidents_json(self, status: IncidentStatus | None) -> list[dict[str, Any]]:
        found = sorted(self.incidents.incidents, key=lambda i: i.started_at)
        return [self._incident_data(i) for i in found if status is None or i.status is status]

    def _incident_data(self, inc: Any) -> dict[str, Any]:
        return incident_data(inc, self._places.get(inc.device) or place_of(self.config, inc.device))

    def _commit(self, change: Change) -> None:
        inc = change.incident
        live = self.incidents.is_live(inc.id)
        row = json.dumps(inc.to_row())
        if change.kind is None:
            self.outbox.save_incident(inc.id, live, row)
            return
        place = self._places.get(inc.device) or place_of(self.config, inc.device)
        kind, source = change.kind, self.source(inc.device)
        try:
            self.outbox.append(
                source=source,
                severity=int(inc.severity),
                build=lambda seq: incident_event(
                    seq=seq, kind=kind, incident=inc, source=source, place=place, time=change.time
                ),
                incident=(inc.id, live, row),
            )
        except StorageFullError as exc:
            # The incident lives on in memory (API, status page); its event is not recorded.
            self.outbox.save_incident(inc.id, live, row)
            self._refused_log.warning("disk-full", "%s event of %s refused: %s", kind.value, inc.id, exc)
            return
        self.metrics.incident_events.labels(inc.category.value, kind.value).inc()

    def _anomaly_evidence(self, window: AnomalyWindow) -> None:
        async def link() -> None:
            self.signal(window.signal.with_evidence(await asyncio.to_thread(store_window, self.evidence_store, window)))

        self._background.spawn(link(), f"gw[{window.device}].anomaly-evidence")

    # -- what the status page and the platform fetch -----------------------------------------

    def link_health(self) -> list[SupervisorHealth]:
        return [s.health for s in self.supervisors]

    def gb28181_status(self) -> list[dict[str, Any]]:
        """Each GB/T 28181 channel as the status page shows it (blocking: call in a thread)."""
        states = {s.name: s.health.state.value for s in self.supervisors}
        return [channel_status(ch, states.get(ch.name)) for ch in self.gb28181.values()]

    async def evidence(self, ref: str) -> tuple[bytes, str] | None:
        return await asyncio.to_thread(self.evidence_store.get, ref)

    # -- life ------------------------------------------------------------------------------

    def _build_supervisors(self) -> None:
        built = build_links(
            self.loaded,
            state_dir=self.state_dir,
            outbox=self.outbox,
            metrics=self.metrics,
            evidence=self.evidence_store,
            on_reading=self.on_reading,
            on_signal=self.signal,
            on_alarm=lambda alarm: self.signal(alarm_signal(alarm)),
        )
        self.camera_set.attach(built)
        self.gb28181.update(built.gb28181)
        for link in built.links:
            if link.devices:
                self.link_watch.watch(link.name, link.devices)
            sup = Supervisor(link.name, link.target, self.metrics, backoff=link.backoff, on_state=self._link_state)
            self.supervisors.append(sup)

    def _storage_changed(self, why: str | None) -> None:
        """The state disk filled up (``why``) or took a commit again (None)."""
        if why is not None:
            log.error("state disk full: %s; shedding old evidence, refusing minor events", why)
            self._background.spawn(asyncio.to_thread(self.evidence_store.shed), "gw[core].shed-evidence")
        self.storage.changed(why, self.outbox.refused_total)

    def _watch(self, now: float) -> None:
        self.link_watch.check(now)
        self.overflow.check(self.outbox.committed_seq - self.outbox.delivered_seq, self.outbox.dropped_total)

    def _link_state(self, h: SupervisorHealth) -> None:
        self.link_watch.on_state(h)
        self.halts.on_state(h)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then stop intake, flush the outbox, and return."""
        await asyncio.to_thread(self.outbox.open)
        self.housekeeping.capacity = await asyncio.to_thread(self.outbox.capacity)
        self.incidents.restore(json.loads(r) for r in self.outbox.live_incident_rows())
        for inc in self.incidents.incidents:
            if inc.condition_active:
                self.rules.assume_active(inc.rule, inc.device, inc.point)
        self._build_supervisors()
        api = ApiServer(self)
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self.outbox.run(), name="gw[outbox].writer")
                await api.start()
                # The API answers (healthz) while the kernels compile in a thread; drivers start after.
                self.notifier.status("compiling kernels")
                sup_tasks: list[asyncio.Task[None]] = []
                tick: asyncio.Task[None] | None = None
                viewers: asyncio.Task[None] | None = None
                if await unless_stopped(in_daemon_thread(warm_kernels, log.info), stop):
                    tick = tg.create_task(self.housekeeping.run(), name="gw[core].tick")
                    viewers = tg.create_task(self.camera_set.live_views.run(), name="gw[live-view].reaper")
                    sup_tasks = [tg.create_task(s.run(), name=f"gw[{s.name}].supervisor") for s in self.supervisors]
                    self.ready.set()
                    self.notifier.ready(self.housekeeping.status_line())
                    log.info("gateway %s running: API on http://%s:%d", self.config.site.box_id, *api.address)
                    await stop.wait()
                else:
                    # A first start compiles for tens of seconds, past the unit's TimeoutStopSec:
                    # the compiler is left to die with the process (the cache takes whole files only).
                    log.info("stopped while the kernels compiled; not waiting for them")
                log.info("stopping: intake off, flushing the outbox")
                self.ready.clear()
                self.notifier.stopping()
                for t in sup_tasks:
                    t.cancel()
                await await_stopped(sup_tasks, _STOP_DRIVERS_S)
                if viewers is not None:
                    viewers.cancel()
                    await await_stopped([viewers], _STOP_DRIVERS_S)
                await api.stop()
                self.housekeeping.save_detector_state()
                try:
                    async with asyncio.timeout(_STOP_FLUSH_S):
                        await self.outbox.flush()
                except TimeoutError:
                    pass
                except OutboxError as exc:  # a full disk: what it never took is lost with the process
                    log.error("stopping: %s", exc)
                self.outbox.stop_intake()
                if tick is not None:
                    tick.cancel()
                writer.cancel()
        finally:
            await api.stop()
            self.outbox.close()
