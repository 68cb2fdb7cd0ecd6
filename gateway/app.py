"""The daemon: wires drivers, rules, incidents, the outbox, pushers and the API under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.base import DriverState, Reading
from drivers.camera import Camera
from drivers.mqtt import MqttDriver
from drivers.opcua import OpcUaAlarm, OpcUaDriver
from edge_config import LoadedConfig, check_secrets, load
from edge_config._base import SecretRef
from edge_config.camera import CameraDevice
from edge_config.model import GatewayConfig
from edge_config.mqtt import MqttDevice
from edge_config.opcua import OpcUaDevice
from edge_config.rules import Rule
from gateway.envelope import incident_event
from gateway.errors import ConfigError
from gateway.evidence import EvidenceStore
from gateway.incidents import Change, Feedback, IncidentManager, IncidentStatus, RoutingPolicy, incident_data
from gateway.metrics import Metrics
from gateway.outbox import Outbox, OutboxCapacity
from gateway.rules import AnomalyWindow, RuleEngine
from gateway.sensor_evidence import window_json, window_png
from gateway.signals import Category, Evidence, Severity, Signal
from gateway.supervisor import Backoff, Supervisor, SupervisorHealth
from gateway.upstream import MqttPusher, WebhookPusher
from gateway.warm import warm_kernels
from systemd.notify import Notifier

__all__ = ["Gateway", "default_state_dir", "run_daemon"]

log = logging.getLogger(__name__)

_TICK_S = 1.0
_PRUNE_EVERY_S = 60.0
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
    """One box's gateway. Build it, then ``await run(stop)``; other parts reach it through its
    small public methods (``signal``, ``acknowledge``, ``close``, ``health``)."""

    def __init__(self, loaded: LoadedConfig, *, state_dir: Path | None = None) -> None:
        self.loaded = loaded
        cfg = self.config = loaded.config
        self.state_dir = state_dir or default_state_dir(cfg)
        self.metrics = Metrics()
        self.notifier = Notifier()
        self.api_token = cfg.api.token.read(loaded.base_dir).get_secret_value()
        consumers = []
        if cfg.upstream.webhook is not None:
            consumers.append(WebhookPusher.consumer)
        if cfg.upstream.mqtt is not None:
            consumers.append(MqttPusher.consumer)
        if not consumers:
            # Pull-only: the platform's feed cursor is what counts as delivered.
            consumers.append("feed")
        self.outbox = Outbox(
            self.state_dir / "outbox.sqlite3",
            budget_bytes=int(cfg.outbox.budget_mb * 1024 * 1024),
            keep_delivered_s=cfg.outbox.keep_delivered_days * 86400,
            commit_interval_s=cfg.outbox.commit_interval_ms / 1000,
            consumers=consumers,
            metrics=self.metrics,
            on_overflow=self._on_overflow,
        )
        # Refreshed once a minute by the tick (a bisect and a sum over a day of events).
        self.capacity: OutboxCapacity | None = None
        self._rules: dict[str, Rule] = {}
        self._set_rules(cfg.rules)
        departments = {d.id: d.department for d in cfg.devices}
        self.incidents = IncidentManager(
            default_department=cfg.site.default_department,
            policy_for=self._policy,
            department_for_device=departments.get,
        )
        self._places = {d.id: self._place(d.id) for d in cfg.devices}
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
        self._background: set[asyncio.Task[None]] = set()
        self.supervisors: list[Supervisor] = []
        self.cameras: dict[str, Camera] = {}
        # Which devices each link carries, and since when each down link has been down.
        self._link_devices: dict[str, list[str]] = {}
        self._link_down_since: dict[str, float] = {}
        self._links_offline: set[str] = set()
        self._overflowing = False
        self.started = time.time()
        # Set once the API listens and every link is supervised; cleared when stopping.
        self.ready = asyncio.Event()

    # -- configuration ---------------------------------------------------------------------

    def _set_rules(self, rules: list[Rule]) -> None:
        self._rules = {r.id: r for r in rules}

    def _policy(self, rule_id: str) -> RoutingPolicy:
        r = self._rules.get(rule_id)
        return _DETECTOR_POLICY if r is None else RoutingPolicy(r.cooldown_s, r.update_interval_s)

    def _place(self, device_id: str) -> dict[str, Any]:
        site = self.config.site
        place: dict[str, Any] = {
            "box_id": site.box_id,
            "township": site.township,
            "village": site.village,
            "civil_code": site.civil_code,
            "latitude": site.latitude,
            "longitude": site.longitude,
        }
        dev = next((d for d in self.config.devices if d.id == device_id), None)
        if dev is not None:
            place["device_name"] = getattr(dev, "name", None)
            loc = getattr(dev, "location", None)
            if loc is not None:
                place["zone_name"] = loc.zone
                if loc.latitude is not None:
                    place["latitude"], place["longitude"] = loc.latitude, loc.longitude
            for extra in ("national_id", "civil_code"):
                if getattr(dev, extra, None):
                    place[extra] = getattr(dev, extra)
        return place

    def source(self, device: str) -> str:
        return f"{self.config.site.source_prefix}:{self.config.site.box_id}/{device}"

    def reload(self) -> None:
        """SIGHUP: re-read the file and swap rules; open incidents stay as they are."""
        try:
            new = load(self.loaded.path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running rules: %s", "; ".join(exc.problems))
            return
        if new.config.model_dump(exclude={"rules"}) != self.config.model_dump(exclude={"rules"}):
            log.warning("reload: only [[rules]] are applied live; other changes need a restart")
        self._set_rules(new.config.rules)
        self.rules.reload(new.config.rules, time.time())
        log.info("reload: %d rules active", len(new.config.rules))

    # -- the incident path -----------------------------------------------------------------

    def on_reading(self, r: Reading) -> None:
        counts = self.metrics.readings.values
        counts[r.device] = counts.get(r.device, 0) + 1
        self.rules.ingest(r, time.time())

    def signal(self, sig: Signal) -> None:
        """Entry point for every detector (rules, vision, anomaly, camera events)."""
        change = self.incidents.apply(sig)
        if change is not None:
            self._commit(change)

    def acknowledge(self, incident_id: str, fb: Feedback) -> dict[str, Any]:
        change = self.incidents.acknowledge(incident_id, fb)
        self._commit(change)
        return self.incident_json(change.incident.id)

    def close(self, incident_id: str, fb: Feedback) -> dict[str, Any]:
        change = self.incidents.close(incident_id, fb)
        self._commit(change)
        return self.incident_json(change.incident.id, change.incident)

    def incident_json(self, incident_id: str, inc: Any = None) -> dict[str, Any]:
        inc = inc or self.incidents.get(incident_id)
        return incident_data(inc, self._places.get(inc.device) or self._place(inc.device))

    def _commit(self, change: Change) -> None:
        inc = change.incident
        live = self.incidents.is_live(inc.id)
        row = json.dumps(inc.to_row())
        if change.kind is None:
            self.outbox.save_incident(inc.id, live, row)
            return
        place = self._places.get(inc.device) or self._place(inc.device)
        kind = change.kind
        self.outbox.append(
            source=self.source(inc.device),
            severity=int(inc.severity),
            build=lambda seq: incident_event(
                seq=seq, kind=kind, incident=inc, source=self.source(inc.device), place=place, time=change.time
            ),
            incident=(inc.id, live, row),
        )
        self.metrics.incident_events.labels(inc.category.value, kind.value).inc()

    def _on_overflow(self, _dropped: int) -> None:
        self._overflowing = True
        total = self.outbox.dropped_total
        self._overflow_signal(True, f"outbox full: {total} undelivered events dropped so far", float(total))

    def _overflow_signal(self, active: bool, summary: str, value: float | None = None) -> None:
        self.signal(
            Signal(
                device=self.config.site.box_id,
                rule="outbox-overflow",
                active=active,
                time=time.time(),
                category=Category.GATEWAY_FAULT,
                severity=Severity.MAJOR,
                summary=summary,
                detector="outbox",
                value=value,
                details={"dropped": self.outbox.dropped_total},
            )
        )

    # -- life ------------------------------------------------------------------------------

    def _status_line(self) -> str:
        up = sum(1 for s in self.supervisors if s.health.state.value == "connected")
        open_n = sum(
            1 for i in self.incidents.incidents if i.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)
        )
        lag = self.outbox.committed_seq - self.outbox.delivered_seq
        line = f"{up}/{len(self.supervisors)} links up, {open_n} open incidents, {lag} events undelivered"
        hours = None if self.capacity is None else self.capacity.covers_hours
        return line if hours is None else f"{line}, outbox holds {hours:,.0f} h of outage"

    def _build_supervisors(self) -> None:
        cfg = self.config
        by_broker: dict[str, list[MqttDevice]] = {}
        for d in cfg.devices:
            if isinstance(d, MqttDevice):
                by_broker.setdefault(d.broker, []).append(d)
        for b in cfg.brokers:
            devs = by_broker.get(b.id)
            if not devs:
                continue
            password = self._secret(b.password)
            drv = MqttDriver(
                b,
                devs,
                client_id=b.client_id or f"edge-{cfg.site.box_id}-{b.id}"[:64],
                password=password,
                on_malformed=self._malformed_counter(f"mqtt:{b.id}"),
                base_dir=self.loaded.base_dir,
            )
            self.add_supervised(drv.name, functools.partial(drv.run, self.on_reading), devices=[d.id for d in devs])
        for d in cfg.devices:
            if isinstance(d, CameraDevice):
                # Cameras report their own offline state (no frames for offline_after_s), so
                # they are not also given to the link-down check.
                cam = Camera.from_config(d, self.loaded.base_dir, evidence=self.evidence_store, analyse=True)
                self.cameras[d.id] = cam
                self.add_supervised(f"camera:{d.id}", functools.partial(cam.run, self.signal))
            if isinstance(d, OpcUaDevice):
                plc = OpcUaDriver(d, self.state_dir, self.loaded.base_dir, on_alarm=self._on_opcua_alarm)
                self.add_supervised(f"opcua:{d.id}", functools.partial(plc.run, self.on_reading), devices=[d.id])
        wh = cfg.upstream.webhook
        if wh is not None:
            key = self._secret(wh.secret)
            secret = key.encode() if key is not None else None
            pusher = WebhookPusher(
                self.outbox,
                str(wh.url),
                secret,
                wh.timeout_s,
                self.metrics,
                tls=wh.tls,
                base_dir=self.loaded.base_dir,
            )
            self.add_supervised(pusher.name, pusher.run, backoff=Backoff(0.5, wh.max_backoff_s))
        up = cfg.upstream.mqtt
        if up is not None:
            broker = next(b for b in cfg.brokers if b.id == up.broker)
            mqtt_pusher = MqttPusher(
                self.outbox,
                self.metrics,
                host=broker.host,
                port=broker.port,
                topic_prefix=up.topic_prefix,
                box_id=cfg.site.box_id,
                client_id=f"edge-{cfg.site.box_id}-uplink"[:64],
                username=broker.username,
                password=self._secret(broker.password),
                tls=broker.tls,
                base_dir=self.loaded.base_dir,
            )
            self.add_supervised(mqtt_pusher.name, mqtt_pusher.run)

    def _secret(self, ref: SecretRef | None) -> str | None:
        return None if ref is None else ref.read(self.loaded.base_dir).get_secret_value()

    def _malformed_counter(self, driver: str) -> Callable[[str], None]:
        def count(reason: str) -> None:
            self.metrics.malformed.labels(driver, reason).inc()

        return count

    def add_supervised(
        self,
        name: str,
        target: Callable[[Callable[[], None]], Any],
        backoff: Backoff | None = None,
        devices: list[str] | None = None,
    ) -> Supervisor:
        """Supervise a long-lived task; ``devices`` are the devices that go offline with it."""
        if devices:
            self._link_devices[name] = devices
        sup = Supervisor(name, target, self.metrics, backoff=backoff, on_state=self._on_link_state)
        self.supervisors.append(sup)
        return sup

    def _on_link_state(self, h: SupervisorHealth) -> None:
        if h.name not in self._link_devices:
            return
        if h.state in (DriverState.BACKOFF, DriverState.FAILED):
            self._link_down_since.setdefault(h.name, time.time())
        elif h.state is DriverState.CONNECTED:
            self._link_down_since.pop(h.name, None)
            if h.name in self._links_offline:
                self._links_offline.discard(h.name)
                self._link_signals(h.name, False, time.time(), f"{h.name} connected again")

    # -- what the status page and the platform fetch -----------------------------------------

    def camera_list(self) -> list[dict[str, Any]]:
        return [cam.status() for cam in self.cameras.values()]

    async def camera_snapshot(self, camera_id: str) -> bytes | None:
        cam = self.cameras.get(camera_id)
        return None if cam is None else await cam.live_jpeg()

    async def evidence(self, ref: str) -> tuple[bytes, str] | None:
        return await asyncio.to_thread(self.evidence_store.get, ref)

    def attach_evidence(self, key: tuple[str, str, str], evidence: Evidence) -> None:
        """Link evidence made after an incident opened; published as an update at once."""
        change = self.incidents.attach_evidence(key, evidence)
        if change is not None:
            self._commit(change)

    def spawn(self, coro: Any, name: str) -> None:
        """A short background job with a strong reference, logged if it fails."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %s", t.get_name(), t.exception())

        task.add_done_callback(done)

    def _anomaly_evidence(self, window: AnomalyWindow) -> None:
        async def store() -> None:
            def write() -> Evidence:
                plot = self.evidence_store.put(window_png(window), "image/png", "plot of the readings around the onset")
                data = self.evidence_store.put(window_json(window), "application/json", "readings around the onset")
                return dataclasses.replace(data, preview=plot.ref)

            evidence = await asyncio.to_thread(write)
            self.attach_evidence((window.device, window.point, window.rule), evidence)

        self.spawn(store(), f"gw[{window.device}].anomaly-evidence")

    def _save_detector_state(self) -> None:
        for key, blob in self.rules.anomaly_states().items():
            self.outbox.set_kv(key, blob)

    def _check_links(self, now: float) -> None:
        for name, since in self._link_down_since.items():
            if name not in self._links_offline and now - since >= self.config.site.link_offline_s:
                self._links_offline.add(name)
                err = next((s.health.last_error for s in self.supervisors if s.name == name), None)
                self._link_signals(name, True, now, f"{name} down for {now - since:.0f} s: {err or 'unknown'}")

    def _link_signals(self, link: str, active: bool, t: float, summary: str) -> None:
        for dev in self._link_devices[link]:
            self.signal(
                Signal(
                    device=dev,
                    rule="link-down",
                    active=active,
                    time=t,
                    category=Category.DEVICE_OFFLINE,
                    severity=Severity.MINOR,
                    summary=summary,
                    detector="supervisor",
                )
            )

    def _on_opcua_alarm(self, alarm: OpcUaAlarm) -> None:
        # The server's own alarm: one incident per condition, cleared when the server clears it.
        active = bool(alarm.active) and alarm.retain is not False
        sev = alarm.severity
        severity = (
            Severity.CRITICAL
            if sev >= 800
            else Severity.MAJOR
            if sev >= 500
            else Severity.MINOR
            if sev >= 200
            else Severity.INFO
        )
        self.signal(
            Signal(
                device=alarm.device,
                rule=f"opcua-alarm:{alarm.condition_id}",
                active=active,
                time=alarm.time,
                category=Category.DEVICE_ALARM,
                severity=severity,
                zone=alarm.source or None,
                summary=f"{alarm.condition}: {alarm.message}",
                detector="opcua-alarms",
                score=float(sev),
            )
        )

    async def _tick(self) -> None:
        last_prune = time.monotonic()
        interval = min(_TICK_S, Notifier.watchdog_interval_s() or _TICK_S)
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            self.rules.tick(now)
            self._check_links(now)
            for inc in self.incidents.expire():
                self.outbox.save_incident(inc.id, False, json.dumps(inc.to_row()))
            self.metrics.outbox_oldest_age.set(await asyncio.to_thread(self.outbox.oldest_undelivered_age))
            for cat in Category:
                n = sum(
                    1
                    for i in self.incidents.incidents
                    if i.category is cat and i.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)
                )
                self.metrics.open_incidents.labels(cat.value).set(n)
            if self._overflowing and self.outbox.committed_seq - self.outbox.delivered_seq == 0:
                self._overflowing = False
                self._overflow_signal(False, "outbox drained")
            if time.monotonic() - last_prune > _PRUNE_EVERY_S:
                last_prune = time.monotonic()
                self._save_detector_state()
                await asyncio.to_thread(self.outbox.prune_delivered)
                self.capacity = await asyncio.to_thread(self.outbox.capacity)
            # The watchdog ping comes from this loop on purpose: if the event loop or this tick
            # wedges, systemd stops hearing from us and restarts the service.
            self.notifier.watchdog()
            self.notifier.status(self._status_line())

    async def run(self, stop: asyncio.Event, *, reload: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set; then stop intake, flush the outbox, and return."""
        from gateway.api import ApiServer

        await asyncio.to_thread(self.outbox.open)
        self.capacity = await asyncio.to_thread(self.outbox.capacity)
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
                await asyncio.to_thread(warm_kernels, log.info)
                tick = tg.create_task(self._tick(), name="gw[core].tick")
                sup_tasks = [tg.create_task(s.run(), name=f"gw[{s.name}].supervisor") for s in self.supervisors]
                self.ready.set()
                self.notifier.ready(self._status_line())
                log.info("gateway %s running: API on http://%s:%d", self.config.site.box_id, *api.address)
                await self._wait(stop, reload)
                log.info("stopping: intake off, flushing the outbox")
                self.ready.clear()
                self.notifier.stopping()
                for t in sup_tasks:
                    t.cancel()
                await _await_stopped(sup_tasks)
                await api.stop()
                self._save_detector_state()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_STOP_FLUSH_S):
                        await self.outbox.flush()
                self.outbox.stop_intake()
                tick.cancel()
                writer.cancel()
        finally:
            await api.stop()
            self.outbox.close()

    async def _wait(self, stop: asyncio.Event, reload: asyncio.Event | None) -> None:
        while not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait())]
            if reload is not None:
                waiters.append(asyncio.ensure_future(reload.wait()))
            _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            if reload is not None and reload.is_set():
                reload.clear()
                self.reload()


async def _await_stopped(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for cancelled tasks, cancelling again any still running after a few seconds.

    A cancellation can be lost: a library may catch it, and Python 3.11's ``asyncio.wait_for``
    swallows it when the awaited result lands at the same moment (cpython gh-86296). The OPC-UA
    link was once seen still running after its cancel, its cause not found; the driver then runs
    on as if nothing happened. So a stop keeps cancelling, and logs the task and where it waits.
    """
    pending = set(tasks)
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=_STOP_DRIVERS_S)
        for t in pending:
            log.warning(
                "stopping: %s still running after %.0f s, waiting in %s; cancelling it again",
                t.get_name(),
                _STOP_DRIVERS_S,
                _awaiting(t),
            )
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _awaiting(task: asyncio.Task[None]) -> str:
    """The chain of coroutines a task is suspended in (Task.get_stack shows only the outermost)."""
    where: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and getattr(coro, "cr_frame", None) is not None and len(where) < 12:
        f = coro.cr_frame
        where.append(f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}")
        coro = coro.cr_await
    return " > ".join(where) or "(unknown)"


async def run_daemon(config_path: Path) -> int:
    """`edge-gateway run`: load, run until SIGTERM/SIGINT, reload on SIGHUP."""
    loaded = load(config_path)
    problems, unchecked = check_secrets(loaded)
    if problems or unchecked:
        # The daemon needs every secret now; a credential that cannot be checked is missing here.
        raise ConfigError(f"{config_path}: secrets missing", problems + unchecked)
    gw = Gateway(loaded)
    stop, reload = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    await gw.run(stop, reload=reload)
    return 0
