"""An ONVIF camera simulator: Device, Media and Events/PullPoint over SOAP 1.2, plus WS-Discovery.

It answers the calls the gateway's driver makes through the real ``onvif-zeep-async`` client, with
responses shaped by the ONVIF schemas (``onvif/wsdl`` in that package), and checks the
WS-UsernameToken digest and its ``Created`` time against its own, settable, clock.

Faults to inject, as a camera would misbehave:

- :meth:`OnvifCameraSim.kill_subscriptions`: every subscription is forgotten; the next
  PullMessages on it gets a SOAP fault (``quiet=True``: it keeps answering but delivers nothing).
- :meth:`OnvifCameraSim.reboot`: subscriptions are lost and the camera is down for a while.
- a wrong password is simply a different ``password`` than the client's.
- :meth:`OnvifCameraSim.skew_clock` / :meth:`set_clock`: the camera's clock is off.

It behaves like a camera where the standard leaves no choice: events report the current state
(not "all clear") on subscription and SetSynchronizationPoint; GetScopes and GetVideoSources
answer; each operation is served only at its own service's address; a UsernameToken needs its
``Created`` time and is accepted once; SOAP 1.2 Receiver faults come with HTTP 500; ProbeMatches
carry an AppSequence; SOAP calls may use HTTP Digest instead of a UsernameToken.

Quirks of real cameras, one switch each (keyword arguments), so tests can play them:
``digest_only`` (SOAP wants HTTP Digest; a UsernameToken alone gets 401 with an empty body),
``utc_time=False`` (GetSystemDateAndTime sends only LocalDateTime), ``events=False`` (no Events
service), ``snapshot_format="png"``, ``snapshot_auth="basic"``, ``stream_uri_timeout_s`` (stream
URIs valid that long, each one different), ``empty_body_ops`` (these operations answer with an
empty SOAP body).

Run standalone for the demo: ``python -m simulators.onvif_camera --port 8000 --rtsp rtsp://...``.

Why this file is long: a camera is one SOAP endpoint whose services share one state (profiles,
clock, subscriptions, credentials); tests drive that state through one object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import logging
import os
import re
import secrets
import socket
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web
from lxml import etree

__all__ = ["OnvifCameraSim", "SimEvent", "SimProfile", "parse_duration"]

logger = logging.getLogger(__name__)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "wsa04": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
}

_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    "<s:Envelope "
    + " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items() if p not in {"d", "wsa04", "dn"})
    + ">{header}<s:Body>{body}</s:Body></s:Envelope>"
)

# Operations a camera answers without credentials (ONVIF Core, access class PRE_AUTH).
_PRE_AUTH = {"GetSystemDateAndTime", "GetServices", "GetCapabilities", "GetServiceCapabilities"}
_TOKEN_WINDOW_S = 5.0
WS_DISCOVERY_PORT = 3702
WS_DISCOVERY_GROUP = "239.255.255.250"


def parse_duration(text: str) -> float:
    """Seconds in an xs:duration such as ``PT60S``, ``PT1M30S`` or ``P1DT2H``."""
    m = re.fullmatch(
        r"\s*P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*",
        text,
    )
    if not m or text.strip() in {"P", "PT"}:
        raise ValueError(f"not an xs:duration: {text!r}")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


@dataclasses.dataclass(frozen=True)
class SimProfile:
    """One media profile: its encoder settings and the RTSP URI it streams at."""

    token: str
    name: str
    width: int
    height: int
    rtsp_uri: str
    fps: int = 25
    bitrate_kbps: int = 1024
    gov_length: int = 25


@dataclasses.dataclass(frozen=True)
class SimEvent:
    """An event the camera raises: ``topic`` without prefix, e.g. ``VideoSource/MotionAlarm``."""

    topic: str
    data: tuple[tuple[str, str], ...]
    source: tuple[tuple[str, str], ...] = (("VideoSourceConfigurationToken", "vsc0"),)
    operation: str = "Changed"


@dataclasses.dataclass
class _Subscription:
    sid: int
    expires: dt.datetime
    queue: list[tuple[dt.datetime, SimEvent]] = dataclasses.field(default_factory=list)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    quiet: bool = False


class _Fault(Exception):
    def __init__(self, subcode: str, reason: str, status: int = 400, code: str = "s:Sender") -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.status = status
        self.code = code


_STATE_SOURCES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("Source", "vs0"),),
    (
        ("VideoSourceConfigurationToken", "vsc0"),
        ("VideoAnalyticsConfigurationToken", "va0"),
        ("Rule", "MyMotionDetectorRule"),
    ),
    (
        ("VideoSourceConfigurationToken", "vsc0"),
        ("VideoAnalyticsConfigurationToken", "va0"),
        ("Rule", "MyTamperDetectorRule"),
    ),
)
_INITIAL_STATE = (
    SimEvent("VideoSource/MotionAlarm", (("State", "false"),), _STATE_SOURCES[0], "Initialized"),
    SimEvent("RuleEngine/CellMotionDetector/Motion", (("IsMotion", "false"),), _STATE_SOURCES[1], "Initialized"),
    SimEvent("RuleEngine/TamperDetector/Tamper", (("IsTamper", "false"),), _STATE_SOURCES[2], "Initialized"),
)

# Which service answers which operation (GetServiceCapabilities is every service's).
_SERVICE_OPS = {
    "device_service": {
        "GetSystemDateAndTime",
        "SetSystemDateAndTime",
        "GetServices",
        "GetCapabilities",
        "GetDeviceInformation",
        "GetScopes",
        "GetServiceCapabilities",
    },
    "media_service": {"GetProfiles", "GetStreamUri", "GetSnapshotUri", "GetVideoSources", "GetServiceCapabilities"},
    "events_service": {"GetEventProperties", "CreatePullPointSubscription", "GetServiceCapabilities"},
    "subscription": {"PullMessages", "Renew", "Unsubscribe", "SetSynchronizationPoint"},
}


def _default_snapshot() -> bytes:
    import cv2
    import numpy as np

    img = np.full((360, 640, 3), 90, np.uint8)
    cv2.putText(img, "ONVIF SIM", (180, 190), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf)


def _to_png(jpeg: bytes) -> bytes:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf)


class OnvifCameraSim:
    """A simulated ONVIF camera served by aiohttp on ``host:port`` (0: a free port)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "admin123",
        manufacturer: str = "TownshipSim",
        model: str = "SIM-CAM-1",
        serial: str = "SIM0001",
        firmware: str = "1.0.0",
        rtsp_main: str = "rtsp://127.0.0.1:8554/main",
        rtsp_sub: str = "rtsp://127.0.0.1:8554/sub",
        snapshot: Callable[[], bytes] | None = None,
        clock_offset_s: float = 0.0,
        discovery_port: int | None = None,
        discovery_host: str = "127.0.0.1",
        join_multicast: bool = False,
        anonymous_device_info: bool = True,
        advertise_host: str | None = None,
        location: str = "township",
        digest_only: bool = False,
        utc_time: bool = True,
        events: bool = True,
        snapshot_format: str = "jpeg",
        snapshot_auth: str = "digest",
        stream_uri_timeout_s: float = 0.0,
        empty_body_ops: frozenset[str] = frozenset(),
    ) -> None:
        self.host = host
        self._port = port
        self.username = username
        self.password = password
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.profiles = [
            SimProfile("main", "mainStream", 1920, 1080, rtsp_main, bitrate_kbps=4096, gov_length=50),
            SimProfile("sub", "subStream", 640, 360, rtsp_sub, bitrate_kbps=512),
        ]
        self._snapshot = snapshot or _default_snapshot
        self._clock_offset = clock_offset_s
        self.discovery_port = discovery_port
        self.discovery_host = discovery_host
        self.join_multicast = join_multicast
        self.anonymous_device_info = anonymous_device_info
        self.advertise_host = advertise_host or host
        self.location = location
        self.endpoint_uuid = str(uuid.uuid4())
        self.digest_only = digest_only
        self.utc_time = utc_time
        self.events = events
        if snapshot_format not in {"jpeg", "png"} or snapshot_auth not in {"digest", "basic"}:
            raise ValueError("snapshot_format is jpeg or png; snapshot_auth is digest or basic")
        self.snapshot_format = snapshot_format
        self.snapshot_auth = snapshot_auth
        self.stream_uri_timeout_s = stream_uri_timeout_s
        self.empty_body_ops = empty_body_ops
        self._state: dict[tuple[str, tuple[tuple[str, str], ...]], SimEvent] = {
            (e.topic, e.source): e for e in _INITIAL_STATE
        }
        self._seen_tokens: dict[tuple[str, str], float] = {}
        self._uri_serial = itertools.count(1)
        self._instance_id = int(time.time())
        self._message_number = itertools.count(1)
        self._subs: dict[int, _Subscription] = {}
        self._sub_ids = itertools.count(1)
        self._down_until = 0.0
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._digest_nonces: set[str] = set()
        # Counters for tests and the demo's status line.
        self.calls: dict[str, int] = {}
        self.auth_failures = 0
        self.subscriptions_created = 0
        self.renewals = 0
        self.set_time_calls = 0

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def device_url(self) -> str:
        return f"http://{self.advertise_host}:{self._port}/onvif/device_service"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/onvif/{service}", self._handle)
        app.router.add_post("/onvif/subscription/{sid}", self._handle)
        app.router.add_get("/onvif/snapshot", self._handle_snapshot)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        if sockets:
            self._port = sockets[0].getsockname()[1]
        if self.discovery_port is not None:
            await self._start_discovery()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OnvifCameraSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- controls --------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The camera's clock."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._clock_offset)

    def skew_clock(self, seconds: float) -> None:
        self._clock_offset = seconds

    def set_clock(self, when: dt.datetime) -> None:
        self._clock_offset = (when - dt.datetime.now(dt.UTC)).total_seconds()

    @property
    def clock_offset_s(self) -> float:
        return self._clock_offset

    def push_event(self, event: SimEvent) -> None:
        """Queue ``event`` on every live subscription (and keep it as the property's state)."""
        key = (event.topic, event.source)
        if key in self._state:
            self._state[key] = dataclasses.replace(event, operation="Initialized")
        for sub in self._subs.values():
            if not sub.quiet:
                sub.queue.append((self.now(), event))
                sub.wake.set()

    def motion(self, on: bool) -> None:
        """The camera's own motion detector changes state (both common topics)."""
        v = "true" if on else "false"
        self.push_event(SimEvent("VideoSource/MotionAlarm", (("State", v),), (("Source", "vs0"),)))
        self.push_event(SimEvent("RuleEngine/CellMotionDetector/Motion", (("IsMotion", v),), _STATE_SOURCES[1]))

    def tamper(self, on: bool) -> None:
        v = "true" if on else "false"
        self.push_event(SimEvent("RuleEngine/TamperDetector/Tamper", (("IsTamper", v),), _STATE_SOURCES[2]))

    def current_state(self) -> list[SimEvent]:
        """What a new subscription or a SetSynchronizationPoint reports: each property as it is now."""
        return list(self._state.values())

    def kill_subscriptions(self, *, quiet: bool = False) -> None:
        """Subscriptions die: forgotten (next pull faults), or ``quiet`` (answer, deliver nothing)."""
        if quiet:
            for sub in self._subs.values():
                sub.quiet = True
                sub.queue.clear()
        else:
            for sub in self._subs.values():
                sub.wake.set()
            self._subs.clear()

    def reboot(self, downtime_s: float = 1.0) -> None:
        """Lose every subscription and refuse service for ``downtime_s``."""
        self.kill_subscriptions()
        self._down_until = time.monotonic() + downtime_s

    @property
    def live_subscriptions(self) -> int:
        return len(self._subs)

    # --- SOAP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._down_until:
            return web.Response(status=503, text="rebooting")
        raw = await request.read()
        try:
            root = etree.fromstring(raw, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            return self._fault(_Fault("ter:WellFormed", "Malformed XML"))
        body = root.find("s:Body", NS)
        if body is None or len(body) == 0:
            return self._fault(_Fault("ter:WellFormed", "No SOAP body"))
        op_el = body[0]
        op = etree.QName(op_el).localname
        self.calls[op] = self.calls.get(op, 0) + 1
        service = "subscription" if "sid" in request.match_info else request.match_info.get("service", "")
        digest = self._digest_ok(request)
        if self.digest_only and not digest and op not in _PRE_AUTH:
            # As Digest-only firmware does: a bare 401 with a challenge and nothing in the body.
            return self._challenge()
        try:
            handler = getattr(self, f"_op_{op}", None)
            if service == "events_service" and not self.events:
                handler = None
            if handler is None or op not in _SERVICE_OPS.get(service, ()):
                raise _Fault("ter:ActionNotSupported", f"Operation {op} is not supported here", code="s:Receiver")
            if not digest and not self.digest_only:  # Digest-only firmware ignores WS-Security
                self._check_auth(root, op)
            if op in self.empty_body_ops:
                return web.Response(
                    body=_ENVELOPE.format(header="", body="").encode(),
                    content_type="application/soap+xml",
                    charset="utf-8",
                )
            if service == "subscription":
                sub = self._subscription(request)
                result = handler(op_el, sub)
            else:
                result = handler(op_el)
            if asyncio.iscoroutine(result):
                result = await result
        except _Fault as fault:
            return self._fault(fault)
        return web.Response(
            body=_ENVELOPE.format(header="", body=result).encode(),
            content_type="application/soap+xml",
            charset="utf-8",
        )

    def _challenge(self) -> web.Response:
        nonce = secrets.token_hex(16)
        self._digest_nonces.add(nonce)
        return web.Response(
            status=401,
            headers={"WWW-Authenticate": f'Digest realm="onvif-sim", qop="auth", nonce="{nonce}", algorithm=MD5'},
        )

    def _fault(self, fault: _Fault) -> web.Response:
        body = (
            f"<s:Fault><s:Code><s:Value>{fault.code}</s:Value><s:Subcode><s:Value>{fault.subcode}"
            f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{escape(fault.reason)}'
            "</s:Text></s:Reason></s:Fault>"
        )
        # SOAP 1.2 binding: a Sender fault is HTTP 400, a Receiver fault HTTP 500.
        status = 500 if fault.code == "s:Receiver" else fault.status
        return web.Response(
            status=status,
            body=_ENVELOPE.format(header="", body=body).encode(),
            content_type="application/soap+xml",
            charset="utf-8",
        )

    def _check_auth(self, root: Any, op: str) -> None:
        token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
        if token is None:
            if op in _PRE_AUTH or (op == "GetDeviceInformation" and self.anonymous_device_info):
                return
            self.auth_failures += 1
            raise _Fault("ter:NotAuthorized", "Sender not Authorized")
        user = token.findtext("wsse:Username", default="", namespaces=NS)
        pw_el = token.find("wsse:Password", NS)
        nonce = token.findtext("wsse:Nonce", default="", namespaces=NS)
        created = token.findtext("wsu:Created", default="", namespaces=NS)
        password = pw_el.text if pw_el is not None and pw_el.text else ""
        pw_type = pw_el.get("Type", "") if pw_el is not None else ""
        ok = user == self.username
        if ok and pw_type.endswith("#PasswordDigest"):
            expected = base64.b64encode(
                hashlib.sha1(base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()
            ).decode()
            ok = secrets.compare_digest(expected, password)
        elif ok:
            ok = secrets.compare_digest(self.password, password)
        # The freshness check needs Created: a token without it could be replayed for ever.
        try:
            skew = abs((_parse_time(created) - self.now()).total_seconds()) if created else float("inf")
        except ValueError:
            skew = float("inf")
        ok = ok and skew <= _TOKEN_WINDOW_S
        if ok:
            # A token is good once (WS-Security replay protection): remember it for its window.
            now = time.monotonic()
            self._seen_tokens = {k: t for k, t in self._seen_tokens.items() if now - t < 2 * _TOKEN_WINDOW_S}
            if nonce:
                key = (nonce, created)
                ok = key not in self._seen_tokens
                self._seen_tokens[key] = now
        if not ok:
            self.auth_failures += 1
            raise _Fault("ter:NotAuthorized", "Sender not Authorized")

    # Device service ------------------------------------------------------------------------

    def _base(self) -> str:
        return f"http://{self.advertise_host}:{self._port}/onvif"

    def _op_GetSystemDateAndTime(self, _: Any) -> str:
        now = self.now()
        local = now + dt.timedelta(hours=8)  # TZ CST-8

        def clock(tag: str, t: dt.datetime) -> str:
            return (
                f"<tt:{tag}><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:{tag}>"
            )

        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone>"
            + (clock("UTCDateTime", now) if self.utc_time else "")
            + clock("LocalDateTime", local)
            + "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _op_SetSystemDateAndTime(self, el: Any) -> str:
        self.set_time_calls += 1
        utc = el.find("tds:UTCDateTime", NS)
        if el.findtext("tds:DateTimeType", namespaces=NS) == "Manual":
            if utc is None:
                raise _Fault("ter:InvalidArgVal", "UTCDateTime missing for Manual")

            def num(path: str) -> int:
                return int(utc.findtext(path, default="0", namespaces=NS))

            self.set_clock(
                dt.datetime(
                    num("tt:Date/tt:Year"),
                    num("tt:Date/tt:Month"),
                    num("tt:Date/tt:Day"),
                    num("tt:Time/tt:Hour"),
                    num("tt:Time/tt:Minute"),
                    num("tt:Time/tt:Second"),
                    tzinfo=dt.UTC,
                )
            )
        return "<tds:SetSystemDateAndTimeResponse/>"

    def _op_GetServices(self, _: Any) -> str:
        services = [
            ("http://www.onvif.org/ver10/device/wsdl", "device_service", 2, 60),
            ("http://www.onvif.org/ver10/media/wsdl", "media_service", 2, 60),
            ("http://www.onvif.org/ver10/events/wsdl", "events_service", 2, 60),
        ][: 3 if self.events else 2]
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{self._base()}/{path}</tds:XAddr>"
            f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version></tds:Service>"
            for ns, path, major, minor in services
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    def _op_GetCapabilities(self, _: Any) -> str:
        b = self._base()
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{b}/device_service</tt:XAddr>"
            "<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>"
            "<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>"
            "<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>true</tt:DiscoveryBye>"
            "<tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup>"
            "<tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
            "<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions>"
            "</tt:System>"
            "<tt:IO><tt:InputConnectors>0</tt:InputConnectors><tt:RelayOutputs>0</tt:RelayOutputs></tt:IO>"
            "<tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>"
            "<tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration><tt:AccessPolicyConfig>false"
            "</tt:AccessPolicyConfig><tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>"
            "<tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken></tt:Security>"
            "</tt:Device>"
            + (
                f"<tt:Events><tt:XAddr>{b}/events_service</tt:XAddr>"
                "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
                "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
                "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
                "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
                if self.events
                else ""
            )
            + f"<tt:Media><tt:XAddr>{b}/media_service</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _scopes(self) -> list[str]:
        return [
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/Profile/Streaming",
            f"onvif://www.onvif.org/hardware/{self.model}",
            f"onvif://www.onvif.org/name/{self.manufacturer}",
            f"onvif://www.onvif.org/location/{self.location}",
        ]

    def _op_GetScopes(self, _: Any) -> str:
        items = "".join(
            f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{escape(x)}</tt:ScopeItem></tds:Scopes>"
            for x in self._scopes()
        )
        return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"

    def _op_GetVideoSources(self, _: Any) -> str:
        best = max(self.profiles, key=lambda p: p.width * p.height)
        return (
            '<trt:GetVideoSourcesResponse><trt:VideoSources token="vs0">'
            f"<tt:Framerate>{best.fps}</tt:Framerate><tt:Resolution><tt:Width>{best.width}</tt:Width>"
            f"<tt:Height>{best.height}</tt:Height></tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>"
        )

    def _op_GetDeviceInformation(self, _: Any) -> str:
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{escape(self.manufacturer)}</tds:Manufacturer>"
            f"<tds:Model>{escape(self.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{escape(self.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{escape(self.serial)}</tds:SerialNumber>"
            f"<tds:HardwareId>{escape(self.model)}-hw</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    # Media service -------------------------------------------------------------------------

    def _profile_xml(self, p: SimProfile, tag: str) -> str:
        return (
            f'<{tag} token="{p.token}" fixed="true"><tt:Name>{p.name}</tt:Name>'
            '<tt:VideoSourceConfiguration token="vsc0"><tt:Name>VideoSource</tt:Name>'
            "<tt:UseCount>2</tt:UseCount><tt:SourceToken>vs0</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="1920" height="1080"/></tt:VideoSourceConfiguration>'
            f'<tt:VideoEncoderConfiguration token="vec_{p.token}"><tt:Name>{p.name}</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution>"
            "<tt:Quality>4</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{p.fps}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval>"
            f"<tt:BitrateLimit>{p.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>"
            f"<tt:H264><tt:GovLength>{p.gov_length}</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>"
            "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
            "</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
            "</tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            f"</{tag}>"
        )

    def _op_GetProfiles(self, _: Any) -> str:
        items = "".join(self._profile_xml(p, "trt:Profiles") for p in self.profiles)
        return f"<trt:GetProfilesResponse>{items}</trt:GetProfilesResponse>"

    def _find_profile(self, el: Any) -> SimProfile:
        token = el.findtext("trt:ProfileToken", default="", namespaces=NS)
        for p in self.profiles:
            if p.token == token:
                return p
        raise _Fault("ter:InvalidArgVal/ter:NoProfile", f"No profile {token!r}")

    @staticmethod
    def _media_uri(tag: str, uri: str, timeout_s: float = 0.0) -> str:
        return (
            f"<{tag}><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            f"<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT{timeout_s:g}S</tt:Timeout>"
            f"</trt:MediaUri></{tag}>"
        )

    def _op_GetStreamUri(self, el: Any) -> str:
        uri = self._find_profile(el).rtsp_uri
        if self.stream_uri_timeout_s:
            # Like cameras whose stream URIs carry a session that expires: each one is new.
            uri += ("&" if "?" in uri else "?") + f"session={next(self._uri_serial)}"
        return self._media_uri("trt:GetStreamUriResponse", uri, self.stream_uri_timeout_s)

    def _op_GetSnapshotUri(self, el: Any) -> str:
        p = self._find_profile(el)
        return self._media_uri("trt:GetSnapshotUriResponse", f"{self._base()}/snapshot?profile={p.token}")

    # Events service ------------------------------------------------------------------------

    def _subscription(self, request: web.Request) -> _Subscription:
        try:
            sid = int(request.match_info.get("sid", ""))
        except ValueError:
            sid = -1
        sub = self._subs.get(sid)
        if sub is None or sub.expires < self.now():
            self._subs.pop(sid, None)
            raise _Fault("ter:InvalidArgVal", "Subscription does not exist or has expired", status=400)
        return sub

    def _termination(self, text: str | None, default_s: float = 60.0) -> dt.datetime:
        now = self.now()
        if not text:
            return now + dt.timedelta(seconds=default_s)
        text = text.strip()
        if text.startswith("P"):
            return now + dt.timedelta(seconds=parse_duration(text))
        return _parse_time(text)

    def _op_GetEventProperties(self, _: Any) -> str:
        return (
            "<tev:GetEventPropertiesResponse>"
            "<tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml"
            "</tev:TopicNamespaceLocation><wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>"
            '<wstop:TopicSet xmlns:wstop="http://docs.oasis-open.org/wsn/t-1"/>'
            "<wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
            "</wsnt:TopicExpressionDialect>"
            "<tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
            "</tev:MessageContentFilterDialect>"
            "<tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
            "</tev:MessageContentSchemaLocation></tev:GetEventPropertiesResponse>"
        )

    def _op_CreatePullPointSubscription(self, el: Any) -> str:
        expires = self._termination(el.findtext("tev:InitialTerminationTime", namespaces=NS))
        sid = next(self._sub_ids)
        sub = _Subscription(sid, expires)
        now = self.now()
        sub.queue.extend((now, e) for e in self.current_state())
        self._subs[sid] = sub
        self.subscriptions_created += 1
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{self._base()}/subscription/{sid}</wsa:Address></tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{_iso(expires)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    async def _op_PullMessages(self, el: Any, sub: _Subscription) -> str:
        timeout = parse_duration(el.findtext("tev:Timeout", default="PT1S", namespaces=NS))
        limit = int(el.findtext("tev:MessageLimit", default="10", namespaces=NS))
        if not sub.queue:
            sub.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), timeout=min(timeout, 60.0))
        if sub.sid not in self._subs:
            raise _Fault("ter:InvalidArgVal", "Subscription does not exist or has expired")
        batch, sub.queue[:] = sub.queue[:limit], sub.queue[limit:]
        msgs = "".join(self._message_xml(t, e) for t, e in batch)
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{_iso(self.now())}</tev:CurrentTime>"
            f"<tev:TerminationTime>{_iso(sub.expires)}</tev:TerminationTime>{msgs}"
            "</tev:PullMessagesResponse>"
        )

    @staticmethod
    def _message_xml(t: dt.datetime, e: SimEvent) -> str:
        src = "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>" for k, v in e.source)
        data = "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>" for k, v in e.data)
        return (
            "<wsnt:NotificationMessage>"
            '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
            f"tns1:{escape(e.topic)}</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{_iso(t)}" PropertyOperation="{e.operation}">'
            f"<tt:Source>{src}</tt:Source><tt:Data>{data}</tt:Data></tt:Message>"
            "</wsnt:Message></wsnt:NotificationMessage>"
        )

    def _op_Renew(self, el: Any, sub: _Subscription) -> str:
        sub.expires = self._termination(el.findtext("wsnt:TerminationTime", namespaces=NS))
        self.renewals += 1
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{_iso(sub.expires)}</wsnt:TerminationTime>"
            f"<wsnt:CurrentTime>{_iso(self.now())}</wsnt:CurrentTime></wsnt:RenewResponse>"
        )

    def _op_Unsubscribe(self, _: Any, sub: _Subscription) -> str:
        self._subs.pop(sub.sid, None)
        sub.wake.set()
        return "<wsnt:UnsubscribeResponse/>"

    def _op_SetSynchronizationPoint(self, _: Any, sub: _Subscription) -> str:
        if not sub.quiet:
            now = self.now()
            sub.queue.extend((now, e) for e in self.current_state())
            sub.wake.set()
        return "<tev:SetSynchronizationPointResponse/>"

    # Snapshot (HTTP digest, RFC 7616 MD5 with qop=auth) -------------------------------------

    async def _handle_snapshot(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self._down_until:
            return web.Response(status=503, text="rebooting")
        if self.snapshot_auth == "basic":
            if not self._basic_ok(request):
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="onvif-sim"'})
        elif not self._digest_ok(request):
            return self._challenge()
        data = await asyncio.to_thread(self._snapshot)
        if self.snapshot_format == "png":
            data = await asyncio.to_thread(_to_png, data)
            return web.Response(body=data, content_type="image/png")
        return web.Response(body=data, content_type="image/jpeg")

    def _basic_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.username and secrets.compare_digest(password, self.password)

    def _digest_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[7:])}
        if fields.get("username") != self.username or fields.get("nonce") not in self._digest_nonces:
            return False

        def md5(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()

        ha1 = md5(f"{self.username}:{fields.get('realm', '')}:{self.password}")
        ha2 = md5(f"{request.method}:{fields.get('uri', '')}")
        expected = md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))

    # WS-Discovery --------------------------------------------------------------------------

    async def _start_discovery(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.join_multicast:
            sock.bind(("", self.discovery_port or WS_DISCOVERY_PORT))
            mreq = struct.pack("4s4s", socket.inet_aton(WS_DISCOVERY_GROUP), socket.inet_aton(self.discovery_host))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        else:
            sock.bind((self.discovery_host, self.discovery_port or 0))
        self.discovery_port = sock.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _DiscoveryProtocol(self), sock=sock)
        self._udp = transport

    def probe_match(self, relates_to: str) -> bytes:
        scopes = " ".join(self._scopes())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["wsa04"]}" xmlns:d="{NS["d"]}" '
            f'xmlns:dn="{NS["dn"]}" xmlns:tds="{NS["tds"]}"><s:Header>'
            f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
            f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
            "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
            "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
            f'<d:AppSequence InstanceId="{self._instance_id}" MessageNumber="{next(self._message_number)}"/>'
            "</s:Header><s:Body><d:ProbeMatches><d:ProbeMatch>"
            f"<a:EndpointReference><a:Address>urn:uuid:{self.endpoint_uuid}</a:Address></a:EndpointReference>"
            "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
            f"<d:Scopes>{escape(scopes)}</d:Scopes><d:XAddrs>{escape(self.device_url)}</d:XAddrs>"
            "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
        ).encode()


class _DiscoveryProtocol(asyncio.DatagramProtocol):
    def __init__(self, sim: OnvifCameraSim) -> None:
        self.sim = sim
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            return
        if root.find(".//d:Probe", NS) is None:
            return
        types = root.findtext(".//d:Probe/d:Types", default="", namespaces=NS)
        if types and "NetworkVideoTransmitter" not in types and "Device" not in types:
            return
        msg_id = root.findtext(".//wsa04:MessageID", default="", namespaces=NS)
        if self.transport is not None:
            self.transport.sendto(self.sim.probe_match(msg_id), addr)


async def _main() -> None:
    parser = argparse.ArgumentParser(description="Simulated ONVIF camera for the demo and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password-file", help="file holding the password (default: 'admin123')")
    parser.add_argument("--rtsp-main", default="rtsp://127.0.0.1:8554/main")
    parser.add_argument("--rtsp-sub", default="rtsp://127.0.0.1:8554/sub")
    parser.add_argument("--discovery-port", type=int, default=WS_DISCOVERY_PORT)
    parser.add_argument("--multicast", action="store_true", help="join 239.255.255.250 (LAN demo)")
    quirks = parser.add_argument_group("quirks of real cameras")
    quirks.add_argument("--digest-only", action="store_true", help="SOAP wants HTTP Digest (UsernameToken ignored)")
    quirks.add_argument("--no-utc", action="store_true", help="GetSystemDateAndTime sends only LocalDateTime")
    quirks.add_argument("--no-events", action="store_true", help="no Events service")
    quirks.add_argument("--snapshot-format", choices=("jpeg", "png"), default="jpeg")
    quirks.add_argument("--snapshot-auth", choices=("digest", "basic"), default="digest")
    quirks.add_argument("--stream-uri-timeout", type=float, default=0.0, help="stream URIs valid this many s")
    args = parser.parse_args()
    password = "admin123"
    if args.password_file:
        password = (await asyncio.to_thread(Path(args.password_file).read_text, encoding="utf-8")).strip()
    sim = OnvifCameraSim(
        host=args.host,
        port=args.port,
        username=args.username,
        password=password,
        rtsp_main=args.rtsp_main,
        rtsp_sub=args.rtsp_sub,
        discovery_port=args.discovery_port,
        discovery_host=args.host,
        join_multicast=args.multicast,
        digest_only=args.digest_only,
        utc_time=not args.no_utc,
        events=not args.no_events,
        snapshot_format=args.snapshot_format,
        snapshot_auth=args.snapshot_auth,
        stream_uri_timeout_s=args.stream_uri_timeout,
    )
    async with sim:
        logger.info("ONVIF simulator at %s (discovery udp %s)", sim.device_url, sim.discovery_port)
        await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())
