"""ONVIF: device information, profiles, stream and snapshot URIs, the camera clock, PullPoint events.

Everything goes through ``onvif-zeep-async``; its types and exceptions stay inside this module.
Callers get :class:`DeviceInfo`, :class:`MediaProfile`, :class:`CameraEvent` and
:class:`edge_core.errors.DriverError` subclasses whose text names the camera and never carries a
credential.

The camera clock matters because WS-UsernameToken digests carry a ``Created`` time that cameras
check against their own clock. We ask the camera for its time before authenticating
(``GetSystemDateAndTime`` is allowed without credentials), sign requests with the measured offset
(the client's ``adjust_time``), and if the skew is over 5 s either set the camera's clock (when the
config allows) or warn, naming the camera and the skew.

Why this file is long: every ONVIF call, its SOAP quirks and the translation of the library's
errors into ours stay in one module, so no zeep or onvif type leaks out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from edge_core.errors import (
    DriverAuthError,
    DriverConnectError,
    DriverError,
    DriverProtocolError,
    DriverTimeoutError,
)

__all__ = [
    "CLOCK_SKEW_LIMIT_S",
    "CameraEvent",
    "DeviceInfo",
    "EventKind",
    "MediaProfile",
    "OnvifSession",
    "PullPointSubscription",
    "classify_topic",
    "redact_url",
    "with_credentials",
]

logger = logging.getLogger(__name__)

CLOCK_SKEW_LIMIT_S = 5.0
_PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What ``GetDeviceInformation`` says about the camera."""

    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class MediaProfile:
    """One media profile. ``stream_uri`` and ``snapshot_uri`` never carry credentials."""

    token: str
    name: str
    encoding: str
    width: int
    height: int
    fps: float | None
    gov_length: int | None
    stream_uri: str | None
    snapshot_uri: str | None

    @property
    def pixels(self) -> int:
        return self.width * self.height


class EventKind(enum.StrEnum):
    """What a camera event is about, whatever the vendor's topic spelling."""

    MOTION = "motion"
    TAMPER = "tamper"
    SCENE_CHANGE = "scene-change"
    TOO_BLURRY = "too-blurry"
    TOO_DARK = "too-dark"
    TOO_BRIGHT = "too-bright"
    SIGNAL_LOSS = "signal-loss"


@dataclasses.dataclass(frozen=True, slots=True)
class CameraEvent:
    """A state change the camera reported. ``initial`` marks the state sent on (re)subscription."""

    kind: EventKind
    topic: str
    active: bool
    time: float
    source: str
    initial: bool = False


# Topic (after the 'tns1:' prefix) to kind; the first matching prefix wins.
_TOPICS: tuple[tuple[str, EventKind], ...] = (
    ("VideoSource/MotionAlarm", EventKind.MOTION),
    ("RuleEngine/CellMotionDetector/Motion", EventKind.MOTION),
    ("RuleEngine/MotionRegionDetector/Motion", EventKind.MOTION),
    ("RuleEngine/TamperDetector/Tamper", EventKind.TAMPER),
    ("VideoSource/GlobalSceneChange", EventKind.SCENE_CHANGE),
    ("VideoSource/ImageTooBlurry", EventKind.TOO_BLURRY),
    ("VideoSource/ImageTooDark", EventKind.TOO_DARK),
    ("VideoSource/ImageTooBright", EventKind.TOO_BRIGHT),
    ("VideoSource/SignalLoss", EventKind.SIGNAL_LOSS),
    ("VideoAnalytics/Motion", EventKind.MOTION),
)
_STATE_ITEMS = (
    "State",
    "IsMotion",
    "IsTamper",
    "Value",
    "IsTooBlurry",
    "IsTooDark",
    "IsTooBright",
    "IsSignalLoss",
)


def classify_topic(topic: str) -> EventKind | None:
    """The kind of a topic such as ``tns1:VideoSource/MotionAlarm``; None if we do not use it."""
    bare = topic.strip()
    if ":" in bare.split("/", 1)[0]:
        bare = bare.split(":", 1)[1]
    for prefix, kind in _TOPICS:
        if bare.startswith(prefix):
            return kind
    return None


def _netloc(hostname: str | None, port: int | None) -> str:
    host = hostname or ""
    if ":" in host:  # an IPv6 literal goes back in brackets
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def redact_url(url: str | None) -> str:
    """``url`` without user information or credential query parameters, for logs and errors."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = _netloc(parts.hostname, parts.port)
    query = "&".join(
        q
        for q in parts.query.split("&")
        if q and q.split("=", 1)[0].lower() not in {"user", "username", "password", "pass", "pwd"}
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``user:password@`` added (for the RTSP client only; never log the result)."""
    if not username:
        return url
    parts = urlsplit(url)
    host = _netloc(parts.hostname, parts.port)
    auth = quote(username, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


class OnvifSession:
    """One authenticated ONVIF conversation with a camera.

    Use as an async context manager; :meth:`connect` (called on entry) reads the clock, device
    information, capabilities and profiles. Every method raises :class:`DriverError` subclasses.
    """

    def __init__(
        self,
        device_id: str,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        *,
        allow_set_time: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self.device_id = device_id
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self.allow_set_time = allow_set_time
        self.timeout_s = timeout_s
        self._camera: Any = None
        self.info: DeviceInfo | None = None
        self.profiles: list[MediaProfile] = []
        self.capabilities: dict[str, Any] = {}
        self.clock_skew_s: float = 0.0
        """Camera clock minus ours, in seconds, as measured on connect (after any correction)."""
        self.clock_was_set = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> OnvifSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- errors ---------------------------------------------------------------------------

    def _translate(self, exc: BaseException, what: str) -> DriverError:
        """Turn a library or network exception into our own error; never include credentials."""
        import aiohttp
        import zeep.exceptions
        from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError

        dev = self.device_id
        root: BaseException = exc
        while isinstance(root, ONVIFError) and root.__cause__ is not None and root.__cause__ is not root:
            root = root.__cause__
        if isinstance(root, zeep.exceptions.Fault):
            text = self._scrub(_fault_text(root))
            if _is_auth_fault(root):
                hint = "check the username and password"
                skew = self.clock_skew_s
                if self._camera is not None and self._camera.dt_diff is not None:
                    skew = self._dt_diff()
                if abs(skew) > CLOCK_SKEW_LIMIT_S:
                    hint = (
                        f"the camera clock is {skew:+.0f} s off ours; set its time "
                        "(NTP) or allow_set_time = true, and check the username and password"
                    )
                return DriverAuthError(
                    f"ONVIF authentication failed at {self.address} during {what}: {hint}", device_id=dev
                )
            return DriverProtocolError(
                f"{what}: camera answered with a SOAP fault: {text}",
                device_id=dev,
                code="soap-fault",
            )
        if isinstance(root, ONVIFAuthError):
            return DriverAuthError(
                f"authentication failed at {self.address} during {what}: check the username and password",
                device_id=dev,
            )
        if isinstance(root, (TimeoutError, asyncio.TimeoutError, ONVIFTimeoutError)):
            return DriverTimeoutError(
                f"{what}: no answer from {self.address} within {self.timeout_s:g} s",
                device_id=dev,
                code="timeout",
            )
        if isinstance(root, zeep.exceptions.TransportError):
            return DriverConnectError(
                f"{what}: HTTP {root.status_code} from {self.address}", device_id=dev, code="http"
            )
        if isinstance(root, (aiohttp.ClientError, OSError)):
            return DriverConnectError(
                f"{what}: cannot reach {self.address}: {type(root).__name__}",
                device_id=dev,
                code="unreachable",
            )
        if isinstance(
            root,
            (zeep.exceptions.Error, ONVIFError, ValueError, AttributeError, KeyError, TypeError),
        ):
            return DriverProtocolError(
                f"{what}: unexpected answer from {self.address}: {self._scrub(str(root))}",
                device_id=dev,
                code="protocol",
            )
        return DriverError(f"{what}: {type(root).__name__}", device_id=dev)

    def _scrub(self, text: str) -> str:
        for secret in (self._password,):
            if secret:
                text = text.replace(secret, "***")
        return text[:300]

    async def _call(self, what: str, coro_fn: Callable[[], Awaitable[_T]], timeout: float | None = None) -> _T:
        try:
            async with asyncio.timeout(timeout or self.timeout_s):
                return await coro_fn()
        except DriverError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._translate(exc, what) from None

    # --- connect --------------------------------------------------------------------------

    async def connect(self) -> None:
        from onvif import ONVIFCamera

        await self.close()
        self._camera = ONVIFCamera(self.host, self.port, self._username, self._password, adjust_time=True)
        try:
            await self._call("GetSystemDateAndTime/GetServices", self._camera.update_xaddrs)
            self.clock_skew_s = self._dt_diff()
            if abs(self.clock_skew_s) > CLOCK_SKEW_LIMIT_S:
                await self._handle_skew()
            self.info = await self._device_information()
            caps = await self._call("GetCapabilities", self._camera.get_capabilities)
            self.capabilities = dict(caps or {})
            self.profiles = await self._profiles()
        except BaseException:
            await self.close()
            raise

    def _dt_diff(self) -> float:
        diff = self._camera.dt_diff
        return float(diff.total_seconds()) if diff is not None else 0.0

    async def _handle_skew(self) -> None:
        skew = self.clock_skew_s
        if not self.allow_set_time:
            logger.warning(
                "camera %s: clock is %+.0f s off ours (limit %g s); requests are signed with the "
                "offset, but set the camera's time (NTP) or allow_set_time = true: authentication "
                "and event times depend on it",
                self.device_id,
                skew,
                CLOCK_SKEW_LIMIT_S,
            )
            return
        now = dt.datetime.now(dt.UTC)
        devicemgmt = await self._call("devicemgmt", self._camera.create_devicemgmt_service)
        request = {
            "DateTimeType": "Manual",
            "DaylightSavings": False,
            "UTCDateTime": {
                "Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second},
            },
        }
        await self._call("SetSystemDateAndTime", lambda: devicemgmt.SetSystemDateAndTime(request))
        await self._call("GetSystemDateAndTime", self._camera.update_xaddrs)
        self.clock_skew_s = self._dt_diff()
        self.clock_was_set = True
        logger.warning(
            "camera %s: clock was %+.0f s off ours; set it to our time (now %+.0f s)",
            self.device_id,
            skew,
            self.clock_skew_s,
        )

    async def _device_information(self) -> DeviceInfo:
        devicemgmt = await self._call("devicemgmt", self._camera.create_devicemgmt_service)
        r = await self._call("GetDeviceInformation", devicemgmt.GetDeviceInformation)
        return DeviceInfo(
            manufacturer=str(r.Manufacturer or ""),
            model=str(r.Model or ""),
            firmware=str(r.FirmwareVersion or ""),
            serial=str(r.SerialNumber or ""),
            hardware_id=str(r.HardwareId or ""),
        )

    async def _profiles(self) -> list[MediaProfile]:
        media = await self._call("media", self._camera.create_media_service)
        raw = await self._call("GetProfiles", media.GetProfiles)
        out: list[MediaProfile] = []
        for p in raw or []:
            enc = p.VideoEncoderConfiguration
            if enc is None:
                continue
            res = enc.Resolution
            rate = enc.RateControl
            h264 = enc.H264
            token = str(p.token)
            req = {
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                "ProfileToken": token,
            }
            stream = await self._call("GetStreamUri", functools.partial(media.GetStreamUri, req))
            snapshot_uri: str | None
            try:
                snapshot_uri = await self._call(
                    "GetSnapshotUri", functools.partial(self._camera.get_snapshot_uri, token)
                )
            except DriverProtocolError:
                snapshot_uri = None
            out.append(
                MediaProfile(
                    token=token,
                    name=str(p.Name or token),
                    encoding=str(enc.Encoding or ""),
                    width=int(res.Width) if res is not None else 0,
                    height=int(res.Height) if res is not None else 0,
                    fps=float(rate.FrameRateLimit) if rate is not None and rate.FrameRateLimit else None,
                    gov_length=int(h264.GovLength) if h264 is not None and h264.GovLength else None,
                    stream_uri=redact_url(str(stream.Uri)) if stream is not None and stream.Uri else None,
                    snapshot_uri=redact_url(snapshot_uri) if snapshot_uri else None,
                )
            )
        if not out:
            raise DriverProtocolError(
                "the camera reports no video profile", device_id=self.device_id, code="no-profile"
            )
        return out

    def choose(self, analysis: str | None, evidence: str | None) -> tuple[MediaProfile, MediaProfile]:
        """(analysis, evidence) profiles: the named ones, else the smallest and the largest H.264."""
        by_token = {p.token: p for p in self.profiles}
        for name in (analysis, evidence):
            if name is not None and name not in by_token:
                known = ", ".join(sorted(by_token))
                raise DriverProtocolError(
                    f"no media profile {name!r} (the camera has: {known})",
                    device_id=self.device_id,
                    code="no-profile",
                )
        video = [p for p in self.profiles if p.encoding.upper() in {"H264", "H265", "HEVC"}] or self.profiles
        ranked = sorted(video, key=lambda p: p.pixels)
        a = by_token[analysis] if analysis else ranked[0]
        e = by_token[evidence] if evidence else ranked[-1]
        return a, e

    async def close(self) -> None:
        cam, self._camera = self._camera, None
        if cam is None:
            return
        # Closing the client's HTTP sessions sends nothing to the camera, so it is finished even
        # when this task is cancelled again meanwhile (a stop re-cancels what lingers); cut short,
        # the sessions not yet closed would leak ("Unclosed client session").
        closing = asyncio.ensure_future(cam.close())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await asyncio.wait([closing])
            if not closing.cancelled():
                closing.exception()  # retrieved, so a failed close is not logged as never awaited
            raise
        except Exception:  # best effort: the camera is gone either way
            pass

    # --- calls used while running ---------------------------------------------------------

    async def camera_time_skew(self) -> float:
        """Ask the camera's clock now (no credentials needed); returns camera minus ours, in s."""
        devicemgmt = await self._call("devicemgmt", self._camera.create_devicemgmt_service)
        r = await self._call("GetSystemDateAndTime", devicemgmt.authless_GetSystemDateAndTime)
        d = r.UTCDateTime
        cam = dt.datetime(
            d.Date.Year,
            d.Date.Month,
            d.Date.Day,
            d.Time.Hour,
            d.Time.Minute,
            d.Time.Second,
            tzinfo=dt.UTC,
        )
        return (cam - dt.datetime.now(dt.UTC)).total_seconds()

    async def snapshot(self, profile_token: str, timeout_s: float = 10.0) -> bytes:
        """The profile's snapshot JPEG (HTTP digest auth)."""
        data = await self._call(
            "snapshot",
            lambda: self._camera.get_snapshot(profile_token, timeout=timeout_s),
            timeout=timeout_s + 1,
        )
        if not data:
            raise DriverProtocolError(
                "snapshot: the camera returned no image", device_id=self.device_id, code="snapshot"
            )
        return bytes(data)

    async def subscribe(self, lease_s: float = 60.0) -> PullPointSubscription:
        """Create a PullPoint subscription (``CreatePullPointSubscription``)."""
        sub = PullPointSubscription(self, lease_s)
        await sub.start()
        return sub

    @contextlib.asynccontextmanager
    async def subscription(self, lease_s: float = 60.0) -> AsyncIterator[PullPointSubscription]:
        sub = await self.subscribe(lease_s)
        try:
            yield sub
        finally:
            await sub.close()


def _fault_text(fault: Any) -> str:
    from onvif.util import stringify_onvif_error

    return str(stringify_onvif_error(fault))


def _is_auth_fault(fault: Any) -> bool:
    from onvif.util import is_auth_error

    return bool(is_auth_error(fault))


class PullPointSubscription:
    """A PullPoint subscription, renewed at half its lease (well before expiry).

    :meth:`pull` long-polls for events and renews when due; any failure raises a
    :class:`DriverError` and the caller (the events watchdog) resubscribes.
    """

    def __init__(self, session: OnvifSession, lease_s: float) -> None:
        self._s = session
        self.lease_s = lease_s
        self._pull: Any = None
        self._manager: Any = None
        self._renew_at = 0.0
        self.renewals = 0
        self.address = ""

    async def start(self) -> None:
        s = self._s
        cam = s._camera
        events = await s._call("events service", cam.create_events_service)
        interval = dt.timedelta(seconds=self.lease_s)
        req = {"InitialTerminationTime": cam.get_next_termination_time(interval)}
        result = await s._call("CreatePullPointSubscription", lambda: events.CreatePullPointSubscription(req))
        try:
            address = result.SubscriptionReference.Address._value_1
        except AttributeError:
            raise DriverProtocolError(
                "CreatePullPointSubscription: no subscription address",
                device_id=s.device_id,
                code="protocol",
            ) from None
        from onvif.util import normalize_url

        cam.xaddrs[_PULLPOINT_NS] = cam.rewrite_url(normalize_url(address))
        self.address = redact_url(address)
        self._manager = await s._call(
            "subscription manager", lambda: cam.create_subscription_service("PullPointSubscription")
        )
        self._pull = await s._call("pullpoint service", cam.create_pullpoint_service)
        if cam.has_broken_relative_time(interval, result.CurrentTime, result.TerminationTime):
            result = await s._call("Renew", lambda: self._manager.Renew(cam.get_next_termination_time(interval)))
        self._schedule(result.CurrentTime, result.TerminationTime)

    def _schedule(self, current: dt.datetime | None, termination: dt.datetime | None) -> None:
        granted = self.lease_s
        if current is not None and termination is not None:
            granted = (termination - current).total_seconds()
        # Renew at half the lease the camera granted (its own clock on both ends, so skew-free),
        # never later than 5 s before expiry.
        delay = max(0.5, min(granted * 0.5, granted - 5.0))
        self._renew_at = time.monotonic() + delay

    async def renew(self) -> None:
        s = self._s
        cam = s._camera
        term = cam.get_next_termination_time(dt.timedelta(seconds=self.lease_s))
        result = await s._call("Renew", lambda: self._manager.Renew(term))
        self.renewals += 1
        self._schedule(getattr(result, "CurrentTime", None), getattr(result, "TerminationTime", None))

    async def pull(self, timeout_s: float = 5.0, limit: int = 100) -> list[CameraEvent]:
        """Wait up to ``timeout_s`` for events; renews first when due."""
        if time.monotonic() >= self._renew_at:
            await self.renew()
        req = {"Timeout": dt.timedelta(seconds=timeout_s), "MessageLimit": limit}
        result = await self._s._call(
            "PullMessages",
            lambda: self._pull.PullMessages(req),
            timeout=timeout_s + self._s.timeout_s,
        )
        out: list[CameraEvent] = []
        for msg in getattr(result, "NotificationMessage", None) or []:
            ev = _parse_message(msg)
            if ev is not None:
                out.append(ev)
        return out

    async def sync_point(self) -> None:
        """Ask the camera to resend the current state of every property (SetSynchronizationPoint)."""
        await self._s._call("SetSynchronizationPoint", self._pull.SetSynchronizationPoint)

    async def close(self) -> None:
        """Unsubscribe, best-effort: the camera forgets it at expiry anyway."""
        if self._manager is not None:
            with contextlib.suppress(DriverError):
                await self._s._call("Unsubscribe", self._manager.Unsubscribe, timeout=3.0)
            self._manager = None


def _parse_message(msg: Any) -> CameraEvent | None:
    topic_el = getattr(msg, "Topic", None)
    topic = str(getattr(topic_el, "_value_1", "") or "").strip()
    kind = classify_topic(topic)
    if kind is None:
        return None
    wrapper = getattr(msg, "Message", None)
    body = getattr(wrapper, "_value_1", None)
    if body is None:
        return None
    data = _items(body, "Data")
    source = _items(body, "Source")
    state: bool | None = None
    for name in _STATE_ITEMS:
        if name in data:
            state = data[name].strip().lower() in {"true", "1", "on"}
            break
    if state is None and data:
        state = next(iter(data.values())).strip().lower() in {"true", "1", "on"}
    if state is None:
        return None
    when = _attr(body, "UtcTime")
    if isinstance(when, dt.datetime):
        t = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    else:
        t = time.time()
    op = str(_attr(body, "PropertyOperation") or "")
    src = ",".join(f"{k}={v}" for k, v in source.items())
    return CameraEvent(kind=kind, topic=topic, active=state, time=t, source=src, initial=op == "Initialized")


def _attr(body: Any, name: str) -> Any:
    if hasattr(body, "get") and not hasattr(body, name):  # an lxml element
        return body.get(name)
    return getattr(body, name, None)


def _items(body: Any, section: str) -> dict[str, str]:
    """SimpleItems of the message's Source or Data, from a zeep object or a raw lxml element."""
    out: dict[str, str] = {}
    part = getattr(body, section, None)
    if part is not None and hasattr(part, "SimpleItem"):
        for item in part.SimpleItem or []:
            out[str(item.Name)] = str(item.Value)
        return out
    if hasattr(body, "iter"):
        for el in body.iter():
            if isinstance(el.tag, str) and el.tag.endswith("}" + section):
                for item in el:
                    if isinstance(item.tag, str) and item.tag.endswith("}SimpleItem"):
                        out[str(item.get("Name"))] = str(item.get("Value"))
    return out
