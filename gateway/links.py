"""Everything the gateway supervises, built from the site file: one link per MQTT broker (with its
devices), per camera (with its vision stage), per PLC, and per push channel upstream."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drivers.base import ReadingSink
from drivers.camera import Camera, CameraState
from drivers.mqtt import MqttDriver
from drivers.opcua import OpcUaAlarm, OpcUaDriver
from edge_config import LoadedConfig
from edge_config._base import SecretRef
from edge_config.camera import CameraDevice
from edge_config.model import GatewayConfig
from edge_config.mqtt import MqttDevice
from edge_config.opcua import OpcUaDevice
from edge_core.backoff import Backoff
from edge_core.signals import EvidenceSink, Signal, SignalSink
from gateway.camera_stage import CameraVision
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.mapping import cameras_of, consumer_of
from gateway.gb28181.media import CameraTap, CameraVideo
from gateway.gb28181.telemetry import ChannelCollector
from gateway.live_relay import StreamRelay
from gateway.metrics import Metrics
from gateway.outbox import FEED, Outbox
from gateway.supervisor import Target
from gateway.upstream import MqttPusher, WebhookPusher
from gateway.upstream_nats import NatsPusher

__all__ = ["Link", "Links", "build_links", "push_consumers"]


@dataclass(frozen=True, slots=True)
class Link:
    """A long-lived task to supervise; ``devices`` go offline with it (cameras report their own
    offline state, so theirs is empty)."""

    name: str
    target: Target
    backoff: Backoff | None = None
    devices: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Links:
    links: list[Link] = field(default_factory=list)
    cameras: dict[str, Camera] = field(default_factory=dict)
    stages: dict[str, CameraVision] = field(default_factory=dict)
    gb28181: dict[str, Gb28181Channel] = field(default_factory=dict)
    relays: dict[str, StreamRelay] = field(default_factory=dict)
    taps: dict[str, CameraTap] = field(default_factory=dict)


def push_consumers(cfg: GatewayConfig) -> list[str]:
    """The outbox consumers whose cursors decide what is delivered: each push channel, or, on a
    pull-only box, the platform's feed cursor."""
    consumers = []
    if cfg.upstream.webhook is not None:
        consumers.append(WebhookPusher.consumer)
    if cfg.upstream.mqtt is not None:
        consumers.append(MqttPusher.consumer)
    if cfg.upstream.nats is not None:
        consumers.append(NatsPusher.consumer)
    consumers += [consumer_of(gb.id) for gb in cfg.upstream.gb28181]
    return consumers or [FEED]


def build_links(
    loaded: LoadedConfig,
    *,
    state_dir: Path,
    outbox: Outbox,
    metrics: Metrics,
    evidence: EvidenceSink,
    on_reading: ReadingSink,
    on_signal: SignalSink,
    on_alarm: Callable[[OpcUaAlarm], None],
) -> Links:
    """Build every link of the site (reading secrets now: OSError names the path, never a value).
    Call it on the event loop: the cameras' vision stages hand their signals over to it."""
    cfg, base_dir = loaded.config, loaded.base_dir
    out = Links()

    def secret(ref: SecretRef | None) -> str | None:
        return None if ref is None else ref.read(base_dir).get_secret_value()

    by_broker: dict[str, list[MqttDevice]] = {}
    for d in cfg.devices:
        if isinstance(d, MqttDevice):
            by_broker.setdefault(d.broker, []).append(d)
    for b in cfg.brokers:
        devs = by_broker.get(b.id)
        if not devs:
            continue
        drv = MqttDriver(
            b,
            devs,
            client_id=b.client_id or f"edge-{cfg.site.box_id}-{b.id}"[:64],
            password=secret(b.password),
            on_malformed=functools.partial(_count_malformed, metrics, f"mqtt:{b.id}"),
            base_dir=base_dir,
        )
        out.links.append(Link(drv.name, functools.partial(drv.run, on_reading), devices=[d.id for d in devs]))
    emit = _threadsafe(on_signal)
    for d in cfg.devices:
        if isinstance(d, CameraDevice):
            stage = CameraVision(d, emit, evidence)
            relay = StreamRelay(d.id, asyncio.get_running_loop())
            # The live view's relay and the GB/T 28181 sessions share the one stream the ingest reads.
            tap = CameraTap(relay, asyncio.get_running_loop(), d.id)
            cam = Camera.from_config(d, base_dir, evidence=evidence, frame_sink=stage.process, packet_tap=tap)
            out.cameras[d.id], out.stages[d.id], out.relays[d.id], out.taps[d.id] = cam, stage, relay, tap
            out.links.append(Link(f"camera:{d.id}", functools.partial(cam.run, on_signal)))
        if isinstance(d, OpcUaDevice):
            plc = OpcUaDriver(d, state_dir, base_dir, on_alarm=on_alarm)
            out.links.append(Link(f"opcua:{d.id}", functools.partial(plc.run, on_reading), devices=[d.id]))
    wh = cfg.upstream.webhook
    if wh is not None:
        key = secret(wh.secret)
        pusher = WebhookPusher(
            outbox,
            str(wh.url),
            key.encode() if key is not None else None,
            wh.timeout_s,
            metrics,
            tls=wh.tls,
            base_dir=base_dir,
        )
        out.links.append(Link(pusher.name, pusher.run, backoff=Backoff(0.5, wh.max_backoff_s)))
    up = cfg.upstream.mqtt
    if up is not None:
        broker = next(b for b in cfg.brokers if b.id == up.broker)
        mqtt_pusher = MqttPusher(
            outbox,
            metrics,
            host=broker.host,
            port=broker.port,
            topic_prefix=up.topic_prefix,
            box_id=cfg.site.box_id,
            client_id=f"edge-{cfg.site.box_id}-uplink"[:64],
            username=broker.username,
            password=secret(broker.password),
            tls=broker.tls,
            base_dir=base_dir,
        )
        out.links.append(Link(mqtt_pusher.name, mqtt_pusher.run))
    for gb in cfg.upstream.gb28181:
        channel = Gb28181Channel(
            gb,
            password=secret(gb.password) or "",
            outbox=outbox,
            metrics=metrics,
            cameras=cameras_of(cfg),
            camera_online=functools.partial(_streaming, out.cameras),
            box_name=f"{cfg.site.township} {cfg.site.village} ({cfg.site.box_id})",
            firmware=_version(),
            video=CameraVideo(out.cameras, out.taps),
        )
        out.gb28181[gb.id] = channel
        # A county platform restart must not meet every box in the same second: jittered backoff.
        out.links.append(Link(channel.name, channel.run, backoff=Backoff(1.0, gb.max_backoff_s)))
    if out.gb28181:
        metrics.registry.register(ChannelCollector(list(out.gb28181.values())))
    nc = cfg.upstream.nats
    if nc is not None:
        nats_pusher = NatsPusher(
            outbox,
            metrics,
            nc,
            township=cfg.site.township,
            box_id=cfg.site.box_id,
            password=secret(nc.password),
            nkey_seed=secret(nc.nkey_seed),
            base_dir=base_dir,
        )
        out.links.append(Link(nats_pusher.name, nats_pusher.run, backoff=Backoff(0.5, nc.max_backoff_s)))
    return out


def _streaming(cameras: dict[str, Camera], device: str) -> bool:
    cam = cameras.get(device)
    return cam is not None and cam.state is CameraState.STREAMING


def _version() -> str:
    try:
        return importlib.metadata.version("township-edge-gateway")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _count_malformed(metrics: Metrics, driver: str, reason: str) -> None:
    metrics.malformed.labels(driver, reason).inc()


def _threadsafe(sink: SignalSink) -> Callable[[Signal], None]:
    """``sink`` callable from a worker thread (a camera's ingest): the signal hops onto the loop."""
    loop = asyncio.get_running_loop()

    def emit(signal: Signal) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed at shutdown
            loop.call_soon_threadsafe(sink, signal)

    return emit
