"""ONVIF: device information, profiles, stream and snapshot URIs, the camera clock, PullPoint events.

Everything goes through ``onvif-zeep-async``; its types and exceptions stay inside this module.
Callers get :class:`DeviceInfo`, :class:`MediaProfile`, :class:`CameraEvent` and
:class:`edge_core.errors.DriverError` subclasses whose text names the camera and never carries a
credential.

The camera clock matters because WS-UsernameToken digests carry a ``Created`` time that cameras
check against their own clock. We ask the camera for its time before authenticating
(``GetSystemDateAndTime`` is allowed without credentials), from its ``UTCDateTime`` or, on older
firmware that sends none, its ``LocalDateTime`` (:func:`camera_clock`), sign requests with the
measured offset, and if the skew is over 5 s either set the camera's clock (when the config allows)
or warn, naming the camera and the skew.

Cameras authenticate SOAP calls their own ways: WS-UsernameToken is always sent, and HTTP Digest
is added when the camera answers with a Digest challenge (some firmware is set to Digest only).
A refusal, as a SOAP fault or a bare HTTP 401, is a :class:`DriverAuthError` naming the fix. The
services the camera lists at connect decide whether its events are used at all
(``events_unsupported``). Snapshots are fetched here too, with Digest or Basic as the camera asks,
and come back with their real type (some cameras send PNG).

Why this file is long: every ONVIF call, its SOAP quirks and the translation of the library's
errors into ours stay in one module, so no zeep or onvif type leaks out of it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import logging
import re
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
    "Snapshot",
    "camera_clock",
    "classify_topic",
    "redact_url",
    "with_credentials",
]

logger = logging.getLogger(__name__)

CLOCK_SKEW_LIMIT_S = 5.0
_PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
_EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
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
    stream_uri_valid_s: float | None = None
    """How long the camera said ``stream_uri`` stays valid (its ``Timeout``); None: for ever."""
    stream_uri_once: bool = False
    """The camera said the URI is invalid after one connect (``InvalidAfterConnect``)."""
    stream_uri_at: float = 0.0
    """When ``stream_uri`` was asked for (monotonic seconds)."""

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def stream_uri_expired(self, now: float | None = None) -> bool:
        """Whether ``stream_uri`` must be asked for again before the stream is reopened."""
        if self.stream_uri_once:
            return True
        if self.stream_uri_valid_s is None:
            return False
        return (time.monotonic() if now is None else now) - self.stream_uri_at >= self.stream_uri_valid_s


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot picture as the camera sent it; ``content_type`` is read from the bytes
    (``image/jpeg``, ``image/png``), falling back to the HTTP header."""

    data: bytes
    content_type: str


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


_POSIX_TZ = re.compile(r"\s*(?:[A-Za-z]{3,}|<[^>]+>)([+-]?)(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?")


def _posix_offset(tz: str) -> dt.timedelta | None:
    """UTC minus local time in a POSIX TZ string such as ``CST-8`` (None if it does not parse).

    Only the standard-time part is read: ``DaylightSavings`` says DST is enabled, not that it is
    in force now, so a camera in summer time shows up as an hour of skew (which the skew check names).
    """
    m = _POSIX_TZ.match(tz)
    if m is None:
        return None
    sign, hours, minutes, seconds = m.groups()
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes or 0), seconds=int(seconds or 0))
    return -delta if sign == "-" else delta


def _clock_fields(value: Any) -> tuple[int, int, int, int, int, int] | None:
    date, tod = getattr(value, "Date", None), getattr(value, "Time", None)
    if date is None or tod is None:
        return None
    try:
        return (int(date.Year), int(date.Month), int(date.Day), int(tod.Hour), int(tod.Minute), int(tod.Second))
    except (TypeError, ValueError):
        return None


def camera_clock(answer: Any, local_zone: dt.tzinfo | None = None) -> tuple[dt.datetime, str]:
    """The camera's time (aware, UTC) from a ``GetSystemDateAndTime`` answer, and where it came from.

    ``UTCDateTime`` is optional in the schema and older firmware sends only ``LocalDateTime``: then
    the local time is read in the camera's own POSIX ``TZ`` when it gives one (``"local"``), else in
    ``local_zone`` (default: this box's zone; ``"local-assumed"``). Raises ValueError when the answer
    carries neither time.
    """
    utc = _clock_fields(getattr(answer, "UTCDateTime", None))
    if utc is not None:
        return dt.datetime(*utc, tzinfo=dt.UTC), "utc"
    local = _clock_fields(getattr(answer, "LocalDateTime", None))
    if local is None:
        raise ValueError("GetSystemDateAndTime carries neither UTCDateTime nor LocalDateTime")
    offset = _posix_offset(str(getattr(getattr(answer, "TimeZone", None), "TZ", None) or ""))
    if offset is not None:
        return dt.datetime(*local, tzinfo=dt.UTC) + offset, "local"
    zone = local_zone or dt.datetime.now().astimezone().tzinfo
    return dt.datetime(*local, tzinfo=zone).astimezone(dt.UTC), "local-assumed"


def _image_type(data: bytes, header: str | None) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return (header or "application/octet-stream").split(";")[0].strip().lower()


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
        self.clock_source = "utc"
        """Which field the camera's time was read from: ``utc``, ``local`` (its LocalDateTime in
        its own TZ) or ``local-assumed`` (its LocalDateTime in our zone: it gave no usable TZ)."""
        self.events_unsupported: str | None = None
        """Why the camera cannot deliver PullPoint events (read at connect), None when it can."""
        self.http_digest = False
        """The camera challenged a SOAP call for HTTP Digest (from then on every call carries it)."""
        self._soap_http: Any = None
        self._snapshot_http: Any = None
        self._snapshot_digest: Any = None
        self._snapshot_basic: set[str] = set()

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
                if abs(skew) > CLOCK_SKEW_LIMIT_S:
                    hint = (
                        f"the camera clock is {skew:+.0f} s off ours; set its time "
                        "(NTP) or allow_set_time = true, and check the username and password"
                    )
                return DriverAuthError(
                    f"ONVIF authentication failed at {self.address} during {what}: {hint}", device_id=dev
                )
            if _unsupported_fault(root):
                return _NotSupported(f"{what}: the camera does not support it: {text}", device_id=dev)
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
        if isinstance(root, _EmptyBody):
            return DriverProtocolError(
                f"{what}: the camera at {self.address} answered with an empty SOAP body (no {root.operation} "
                "response and no fault): a firmware fault; check the camera's ONVIF settings or firmware",
                device_id=dev,
                code="empty-body",
            )
        if isinstance(root, zeep.exceptions.TransportError) and root.status_code in (401, 403):
            tried = "WS-UsernameToken and HTTP Digest" if self._username else "no credentials"
            hint = (
                "check the camera's username and password in the site file (and that this ONVIF user "
                "exists on the camera)"
                if self._username
                else "set username and password for this camera in the site file"
            )
            return DriverAuthError(
                f"the camera at {self.address} refused {what} with HTTP {root.status_code} ({tried} tried): {hint}",
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
            (zeep.exceptions.Error, ONVIFError, ValueError, AttributeError, KeyError, TypeError, IndexError),
        ):
            return DriverProtocolError(
                f"{what}: unexpected answer from {self.address}: {type(root).__name__}: {self._scrub(str(root))}",
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
        """Read the clock, the services, device information, capabilities and profiles.

        The clock comes first, unauthenticated (a PRE_AUTH call), so every later request is signed
        with the camera's own time. The services the camera lists decide what is used later: a
        camera without an Events service (or without PullPoint) gets ``events_unsupported`` set and
        is never subscribed to.
        """
        import aiohttp
        from onvif import ONVIFCamera

        await self.close()
        # The library's own clock step reads only UTCDateTime; ours also reads local time.
        self._camera = ONVIFCamera(self.host, self.port, self._username, self._password, adjust_time=False)
        if self._username and self._password is not None:
            # Offered only when the camera answers 401 with a Digest challenge (then preemptively),
            # so a camera happy with WS-UsernameToken never sees it.
            digest = aiohttp.DigestAuthMiddleware(self._username, self._password)
            self._soap_http = aiohttp.ClientSession(middlewares=(digest, self._note_challenge))
        self._snapshot_http = aiohttp.ClientSession()
        # One for the session's life, so that after the first challenge each snapshot is answered
        # at once (preemptive Digest) rather than after a 401 every time.
        self._snapshot_digest = (
            aiohttp.DigestAuthMiddleware(self._username, self._password or "") if self._username else None
        )
        try:
            await self._read_clock()
            if abs(self.clock_skew_s) > CLOCK_SKEW_LIMIT_S:
                await self._handle_skew()
            await self._read_services()
            self.info = await self._device_information()
            self.profiles = await self._profiles()
        except BaseException:
            await self.close()
            raise

    async def _note_challenge(self, request: Any, handler: Any) -> Any:
        """aiohttp middleware (inside the Digest one): notes that the camera asked for Digest."""
        response = await handler(request)
        if response.status == 401 and "digest" in response.headers.get("WWW-Authenticate", "").lower():
            self.http_digest = True
        return response

    async def _service(self, what: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        """A service client of the library, made ready for this camera: HTTP Digest when the camera
        asks for it, and an empty SOAP body reported as such rather than as an IndexError."""
        # The library keeps a service, and so closes its HTTP session, only once its setup has
        # finished: one cancelled mid-setup (a stop in the first second) is nobody's, and its
        # session is reported unclosed at exit. So the setup ends in a task of its own, and a stop
        # that came meanwhile closes what it made.
        making = asyncio.ensure_future(self._call(what, factory))
        try:
            svc = await asyncio.shield(making)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await (await making).close()
            raise
        for client in (svc.zeep_client, svc.zeep_client_authless):
            if not any(isinstance(p, _EmptyBodyCheck) for p in client.plugins):
                client.plugins.append(_EmptyBodyCheck())
        if self._soap_http is not None and svc.transport.session is not self._soap_http:
            svc.transport.session = self._soap_http
        return svc

    async def _devicemgmt(self) -> Any:
        return await self._service("devicemgmt", self._camera.create_devicemgmt_service)

    async def _read_clock(self) -> None:
        cam = self._camera
        devicemgmt = await self._devicemgmt()
        try:
            answer = await self._call("GetSystemDateAndTime", devicemgmt.authless_GetSystemDateAndTime)
        except DriverAuthError:
            raise
        except DriverProtocolError:  # some firmware wants credentials even for the clock
            answer = await self._call("GetSystemDateAndTime", devicemgmt.GetSystemDateAndTime)
        self.clock_skew_s = self._skew_from(answer)
        # Requests are signed with the camera's clock: the library reads the offset when it
        # builds a service, so the device service built before the offset was known goes.
        cam.dt_diff = dt.timedelta(seconds=self.clock_skew_s)
        cam.services.pop(devicemgmt.binding_key, None)
        await devicemgmt.close()

    def _skew_from(self, answer: Any) -> float:
        try:
            when, source = camera_clock(answer)
        except ValueError as exc:
            raise DriverProtocolError(
                f"GetSystemDateAndTime: {exc}", device_id=self.device_id, code="protocol"
            ) from None
        if source != "utc" and self.clock_source != source:
            logger.info(
                "camera %s: it gives no UTCDateTime; its clock is read from LocalDateTime %s",
                self.device_id,
                "in its own TZ" if source == "local" else "as this box's local time (it gives no usable TZ)",
            )
        self.clock_source = source
        return (when - dt.datetime.now(dt.UTC)).total_seconds()

    async def _read_services(self) -> None:
        """Fill the library's service addresses from GetServices, and read GetCapabilities."""
        from onvif.util import normalize_url

        cam = self._camera
        devicemgmt = await self._devicemgmt()
        try:
            services = await self._call("GetServices", lambda: devicemgmt.GetServices({"IncludeCapability": False}))
        except DriverAuthError:
            raise
        except DriverProtocolError:  # optional before ONVIF 2.0: GetCapabilities is the fallback
            services = []
        for svc in services or []:
            namespace, xaddr = getattr(svc, "Namespace", None), getattr(svc, "XAddr", None)
            if namespace and xaddr:
                cam.xaddrs[str(namespace)] = cam.rewrite_url(normalize_url(str(xaddr)))
        caps = await self._call("GetCapabilities", cam.get_capabilities)
        self.capabilities = dict(caps or {})
        events = self.capabilities.get("Events") or {}
        if _EVENTS_NS not in cam.xaddrs:
            self.events_unsupported = (
                "the camera has no ONVIF Events service (GetServices and GetCapabilities list none)"
            )
        elif isinstance(events, dict) and events.get("WSPullPointSupport") is False:
            self.events_unsupported = "the camera's Events service does not offer PullPoint subscriptions"
        else:
            self.events_unsupported = None

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
        devicemgmt = await self._devicemgmt()
        request = {
            "DateTimeType": "Manual",
            "DaylightSavings": False,
            "UTCDateTime": {
                "Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second},
            },
        }
        await self._call("SetSystemDateAndTime", lambda: devicemgmt.SetSystemDateAndTime(request))
        await self._read_clock()
        self.clock_was_set = True
        logger.warning(
            "camera %s: clock was %+.0f s off ours; set it to our time (now %+.0f s)",
            self.device_id,
            skew,
            self.clock_skew_s,
        )

    async def _device_information(self) -> DeviceInfo:
        devicemgmt = await self._devicemgmt()
        r = await self._call("GetDeviceInformation", devicemgmt.GetDeviceInformation)
        return DeviceInfo(
            manufacturer=str(r.Manufacturer or ""),
            model=str(r.Model or ""),
            firmware=str(r.FirmwareVersion or ""),
            serial=str(r.SerialNumber or ""),
            hardware_id=str(r.HardwareId or ""),
        )

    async def _profiles(self) -> list[MediaProfile]:
        media = await self._service("media", self._camera.create_media_service)
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
            stream = await self._stream_uri(media, token)
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
                    stream_uri=stream[0],
                    snapshot_uri=redact_url(snapshot_uri) if snapshot_uri else None,
                    stream_uri_valid_s=stream[1],
                    stream_uri_once=stream[2],
                    stream_uri_at=time.monotonic(),
                )
            )
        if not out:
            raise DriverProtocolError(
                "the camera reports no video profile", device_id=self.device_id, code="no-profile"
            )
        return out

    async def _stream_uri(self, media: Any, token: str) -> tuple[str | None, float | None, bool]:
        """(URI without credentials, seconds it stays valid or None, invalid after one connect)."""
        req = {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": token,
        }
        stream = await self._call("GetStreamUri", functools.partial(media.GetStreamUri, req))
        uri = getattr(stream, "Uri", None)
        timeout: Any = getattr(stream, "Timeout", None)
        valid_s: float | None = None
        if hasattr(timeout, "totimedelta"):  # an isodate Duration (months or years)
            timeout = timeout.totimedelta(start=dt.datetime.now())
        if isinstance(timeout, dt.timedelta):
            valid_s = timeout.total_seconds() or None  # PT0S: valid for ever
        once = bool(getattr(stream, "InvalidAfterConnect", False))
        return (redact_url(str(uri)) if uri else None), valid_s, once

    async def refresh_stream_uri(self, token: str) -> MediaProfile:
        """The profile, its stream URI asked for again when the camera said it expires
        (``Timeout`` past, or ``InvalidAfterConnect``); unchanged otherwise."""
        index = next(i for i, p in enumerate(self.profiles) if p.token == token)
        profile = self.profiles[index]
        if not profile.stream_uri_expired():
            return profile
        media = await self._service("media", self._camera.create_media_service)
        uri, valid_s, once = await self._stream_uri(media, token)
        profile = dataclasses.replace(
            profile, stream_uri=uri, stream_uri_valid_s=valid_s, stream_uri_once=once, stream_uri_at=time.monotonic()
        )
        self.profiles[index] = profile
        return profile

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
        sessions = [x for x in (self._soap_http, self._snapshot_http) if x is not None]
        self._soap_http = self._snapshot_http = None
        if cam is None and not sessions:
            return

        async def close_all() -> None:
            for http in sessions:
                await http.close()
            if cam is not None:
                await cam.close()

        # Closing the client's HTTP sessions sends nothing to the camera, so it is finished even
        # when this task is cancelled again meanwhile (a stop re-cancels what lingers); cut short,
        # the sessions not yet closed would leak ("Unclosed client session").
        closing = asyncio.ensure_future(close_all())
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
        devicemgmt = await self._devicemgmt()
        r = await self._call("GetSystemDateAndTime", devicemgmt.authless_GetSystemDateAndTime)
        return self._skew_from(r)

    async def snapshot(self, profile_token: str, timeout_s: float = 10.0) -> Snapshot:
        """The profile's snapshot picture, JPEG or whatever the camera sends (PNG on some).

        The snapshot URL is plain HTTP outside SOAP, and cameras protect it their own way: HTTP
        Digest (offered when the camera challenges for it), or Basic when the camera's challenge
        asks for Basic (then remembered for that URL).
        """
        uri = await self._call("GetSnapshotUri", lambda: self._camera.get_snapshot_uri(profile_token))
        if not uri:
            raise DriverProtocolError(
                f"snapshot: profile {profile_token!r} has no snapshot URI", device_id=self.device_id, code="snapshot"
            )
        return await self._call("snapshot", lambda: self._fetch_snapshot(str(uri), timeout_s), timeout=timeout_s + 1)

    async def _fetch_snapshot(self, uri: str, timeout_s: float) -> Snapshot:
        import aiohttp

        http = self._snapshot_http
        assert http is not None
        user, password = self._username, self._password
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        basic = "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode() if user else None
        use_basic = uri in self._snapshot_basic
        for _ in range(2):
            kwargs: dict[str, Any] = {"timeout": timeout}
            if use_basic:
                kwargs["headers"] = {"Authorization": basic}
            elif user:
                kwargs["middlewares"] = (self._snapshot_digest,)
            async with http.get(uri, **kwargs) as resp:
                challenge = resp.headers.get("WWW-Authenticate", "")
                if resp.status == 401 and not use_basic and basic is not None and challenge.lower().startswith("basic"):
                    use_basic = True
                    continue
                if resp.status in (401, 403):
                    how = "Basic" if use_basic else "Digest" if user else "no credentials"
                    raise DriverAuthError(
                        f"snapshot at {redact_url(uri)}: HTTP {resp.status} ({how} tried): check the camera's "
                        "username and password in the site file",
                        device_id=self.device_id,
                    )
                if resp.status >= 300:
                    raise DriverProtocolError(
                        f"snapshot at {redact_url(uri)}: HTTP {resp.status}", device_id=self.device_id, code="snapshot"
                    )
                data = await resp.read()
                header = resp.headers.get("Content-Type")
            if use_basic:
                self._snapshot_basic.add(uri)
            if not data:
                raise DriverProtocolError(
                    "snapshot: the camera returned no image", device_id=self.device_id, code="snapshot"
                )
            return Snapshot(bytes(data), _image_type(data, header))
        raise AssertionError("unreachable")  # pragma: no cover

    async def subscribe(self, lease_s: float = 60.0) -> PullPointSubscription:
        """Create a PullPoint subscription (``CreatePullPointSubscription``).

        A camera that lists an Events service but answers that it does not support this gets
        ``events_unsupported`` set (then the error is raised as usual): asking again is pointless.
        """
        sub = PullPointSubscription(self, lease_s)
        try:
            await sub.start()
        except _NotSupported as exc:
            self.events_unsupported = f"the camera refuses PullPoint subscriptions ({exc})"
            raise
        return sub

    @contextlib.asynccontextmanager
    async def subscription(self, lease_s: float = 60.0) -> AsyncIterator[PullPointSubscription]:
        sub = await self.subscribe(lease_s)
        try:
            yield sub
        finally:
            await sub.close()


class _NotSupported(DriverProtocolError):
    """A SOAP fault saying the operation is not there (ter:ActionNotSupported and kin); it leaves
    this module as the DriverProtocolError it is, its meaning recorded on the session."""

    def __init__(self, message: str, *, device_id: str) -> None:
        super().__init__(message, device_id=device_id, code="not-supported")


_UNSUPPORTED_SUBCODES = {"ActionNotSupported", "OptionalActionNotImplemented", "NotSupported"}


def _unsupported_fault(fault: Any) -> bool:
    names = [getattr(q, "localname", str(q)) for q in getattr(fault, "subcodes", None) or []]
    return any(n.split("}")[-1].split(":")[-1] in _UNSUPPORTED_SUBCODES for n in names)


class _EmptyBody(Exception):
    """A SOAP answer whose Body holds nothing: no response element and no fault."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"empty SOAP body in the answer to {operation}")
        self.operation = operation


class _EmptyBodyCheck:
    """zeep plugin: an empty Body raises :class:`_EmptyBody` instead of an IndexError deep in zeep."""

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> tuple[Any, Any]:
        body = next((el for el in envelope if isinstance(el.tag, str) and el.tag.endswith("}Body")), None)
        if body is not None and not any(isinstance(el.tag, str) for el in body):
            raise _EmptyBody(str(getattr(operation, "name", "?")))
        return envelope, http_headers

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> tuple[Any, Any]:
        return envelope, http_headers


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
        events = await s._service("events service", cam.create_events_service)
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
        self._manager = await s._service(
            "subscription manager", lambda: cam.create_subscription_service("PullPointSubscription")
        )
        self._pull = await s._service("pullpoint service", cam.create_pullpoint_service)
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
