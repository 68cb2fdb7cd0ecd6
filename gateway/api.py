"""The local HTTP API: health, metrics, the pull feed, platform feedback on incidents.

Every route except /healthz needs ``Authorization: Bearer <token>``. The routes are listed in one
table (``ROUTES``); gateway/openapi.json documents the same set, and a test keeps the two equal.
The handlers ask the gateway only what :class:`GatewayView` lists.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge_config import LoadedConfig
from edge_core.errors import ConfigError, OutboxError
from gateway.api_page import (
    PAGE_VIEW,
    ROLE,
    PageView,
    get_motion,
    get_zones,
    live_close,
    live_keepalive,
    live_offer,
    me,
    put_zones,
)
from gateway.envelope import encode_batch
from gateway.incidents import Feedback, IncidentNotFound, IncidentStatus
from gateway.metrics import Metrics
from gateway.outbox import FeedAheadError, Outbox
from gateway.problems import bad_request as _bad_request
from gateway.problems import problem as _problem
from gateway.roles import Role, allowed, role_of
from gateway.supervisor import SupervisorHealth

__all__ = ["PAGE_ROUTES", "ROUTES", "ApiServer", "GatewayView", "build_app"]


class GatewayView(PageView, Protocol):
    """What the API may ask of the gateway (``gateway.app.Gateway`` is one); the page's routes
    ask what :class:`gateway.api_page.PageView` lists."""

    loaded: LoadedConfig
    api_token: str
    started: float
    ready: asyncio.Event
    metrics: Metrics
    outbox: Outbox

    def link_health(self) -> list[SupervisorHealth]: ...

    def gb28181_status(self) -> list[dict[str, Any]]:
        """Blocking (it reads the outbox): call it in a worker thread."""

    def incidents_json(self, status: IncidentStatus | None) -> list[dict[str, Any]]: ...

    def incident_json(self, incident_id: str) -> dict[str, Any]: ...

    async def acknowledge(self, incident_id: str, fb: Feedback) -> dict[str, Any]:
        """Apply it; return once it is durable (OutboxError when it cannot be)."""

    async def close(self, incident_id: str, fb: Feedback) -> dict[str, Any]:
        """As acknowledge; a retried close of an incident closed earlier answers the same."""

    async def evidence(self, ref: str) -> tuple[bytes, str] | None: ...


GATEWAY: web.AppKey[GatewayView] = web.AppKey("gateway", object)  # type: ignore[arg-type]
BATCH_TYPE = "application/cloudevents-batch+json"
_MAX_LIMIT = 1000
_MAX_WAIT_S = 300  # the most any box's [api] max_wait_s may be
_LAST_EPOCH_S = 253402300800  # 10000-01-01: past it a time cannot be written as ISO 8601
# The status page's HTML, script and style hold no data (the data comes from the token-protected
# API), so they are public: a technician opens the page first and types the token there.
_STATIC_TYPES = {
    "app.js": "text/javascript",
    "live.js": "text/javascript",
    "incidents.js": "text/javascript",
    "i18n.js": "text/javascript",
    "messages.json": "application/json",
    "style.css": "text/css",
}
_PUBLIC = frozenset({"/healthz", "/", *(f"/static/{name}" for name in _STATIC_TYPES)})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)

_EMPTY_TOKEN = (
    "the API token is empty, so the API lets no one in: write one into the secret [api] token names, "
    "e.g. head -c 24 /dev/urandom | base64"
)

# errno of a failed listen -> (the [api] field to change, what to do).
_BIND_HINTS = {
    errno.EADDRINUSE: (
        "port",
        "another program has it (a second gateway, or the demo?): stop it or choose another port",
    ),
    errno.EADDRNOTAVAIL: ("listen", "this box has no such address: use 127.0.0.1, 0.0.0.0 or one of its own"),
    errno.EACCES: ("port", "ports below 1024 need privileges the service does not have: choose 1024 or above"),
}


def _gw(request: web.Request) -> GatewayView:
    return request.app[GATEWAY]


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _PUBLIC:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = _gw(request).api_token
    # An empty token file would otherwise let in anyone who sends "Authorization: Bearer".
    role = role_of(token.strip(), _tokens(_gw(request))) if scheme.lower() == "bearer" else None
    if not expected or role is None:
        detail = "send 'Authorization: Bearer <token>'" if expected else _EMPTY_TOKEN
        resp = _problem(401, "Unauthorized", detail)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="edge-gateway"'
        return resp
    route = request.match_info.route.resource
    if route is not None and not allowed(role, request.method, route.canonical):
        who = {Role.VIEWER: "the read-only viewer's token", Role.PLATFORM: "the platform's token"}.get(
            role, "this token"
        )
        need = "the technician's login" if role is not Role.VIEWER else "the technician's or the platform's token"
        return _problem(403, "Forbidden", f"{who} cannot do this: it needs {need}")
    request[ROLE] = role
    return await handler(request)


def _tokens(gw: GatewayView) -> dict[Role, str]:
    # The platform's token stays where it always was (api_token); the others come with the roles.
    return {**getattr(gw, "tokens", {}), Role.PLATFORM: gw.api_token}


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() also takes '١٢', '1_000', ' 7 ' and '+7', which no other server
    # (and not the OpenAPI document) reads as integers.
    if not (raw.isascii() and raw.isdigit()):
        raise _bad_request(f"'{name}' must be an integer (ASCII digits)")
    # Past 20 digits it is out of any range here, and int() refuses 4,300 digits with a ValueError.
    value = int(raw) if len(raw.lstrip("0")) <= 20 else hi + 1
    if not lo <= value <= hi:
        raise _bad_request(f"'{name}' must be in {lo}..{hi}")
    return value


async def healthz(request: web.Request) -> web.Response:
    gw = _gw(request)
    return web.json_response({"status": "ok", "uptime_s": round(time.time() - gw.started, 3)})


async def readyz(request: web.Request) -> web.Response:
    gw = _gw(request)
    links = {h.name: h.state.value for h in gw.link_health()}
    ready = gw.ready.is_set()
    return web.json_response({"ready": ready, "links": links}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_gw(request).metrics.registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def events(request: web.Request) -> web.Response:
    """The pull feed: committed events after a sequence, oldest first, long-polling when empty."""
    gw = _gw(request)
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, _MAX_LIMIT)
    # Any wait the document allows is taken; the box holds the answer at most its max_wait_s.
    wait = min(_int_param(request, "wait", 0, 0, _MAX_WAIT_S), int(gw.loaded.config.api.max_wait_s))
    # The status page reads the feed to show it, not to take delivery (see Outbox.pull).
    peek = _int_param(request, "peek", 0, 0, 1) == 1
    try:
        batch = await gw.outbox.pull(after, limit, wait, peek=peek)
    except FeedAheadError as exc:
        return _problem(409, "Conflict", str(exc))
    resp = web.Response(body=encode_batch([e.body for e in batch]))
    resp.headers["Content-Type"] = BATCH_TYPE
    last = batch[-1].seq if batch else after
    resp.headers["X-Next-After"] = str(last)
    resp.headers["X-Committed-Seq"] = str(gw.outbox.committed_seq)
    return resp


async def list_incidents(request: web.Request) -> web.Response:
    gw = _gw(request)
    want = request.query.get("status")
    if want is not None and want not in IncidentStatus._value2member_map_:
        return _problem(400, "Bad Request", f"status must be one of {[s.value for s in IncidentStatus]}")
    items = gw.incidents_json(None if want is None else IncidentStatus(want))
    return web.json_response({"incidents": items})


async def get_incident(request: web.Request) -> web.Response:
    try:
        return web.json_response(_gw(request).incident_json(request.match_info["id"]))
    except IncidentNotFound:
        return _problem(404, "Not Found", f"no live incident {request.match_info['id']!r}")


_decode_json = json.JSONDecoder().decode


def _text(value: object) -> bool:
    """A JSON string that is valid Unicode (JSON's \\ud800 escapes make lone surrogates, which
    cannot be written out as UTF-8 later, in the event)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _feedback(request: web.Request) -> Feedback:
    raw = await request.read() if request.can_read_body else b""
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise _bad_request(f"send the body as UTF-8 JSON, not {charset[:40]!r}")
    try:
        body = _decode_json(raw.decode("utf-8")) if raw.strip() else {}
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, NaN, 30,000-deep, 5,000 digits
        raise _bad_request("body is not UTF-8 JSON") from None
    if not isinstance(body, dict) or not _text(body.get("by")) or not body["by"].strip():
        raise _bad_request("body needs 'by': who acts")
    note = body.get("note", "")
    at = body.get("at", time.time())
    # Python's JSON takes NaN and Infinity, and true is an int: none of them is a time. Caught
    # later, they failed the event's envelope after the incident had already changed.
    is_time = isinstance(at, int | float) and not isinstance(at, bool) and 0 <= at < _LAST_EPOCH_S
    if not _text(note) or not is_time:
        raise _bad_request("'note' is text, 'at' epoch seconds (a number from 0 to year 9999)")
    by = body["by"].strip()
    if len(body["by"]) > 128 or len(note) > 2000:
        raise _bad_request("'by' is at most 128 characters, 'note' at most 2000")
    return Feedback(by=by, at=float(at), note=note)


def _feedback_route(action: str) -> Handler:
    """POST /api/v1/incidents/{id}/<action>: the platform acknowledges or closes an incident."""

    async def handler(request: web.Request) -> web.StreamResponse:
        fb = await _feedback(request)
        gw = _gw(request)
        apply = gw.acknowledge if action == "ack" else gw.close
        try:
            return web.json_response(await apply(request.match_info["id"], fb))
        except IncidentNotFound:
            return _problem(404, "Not Found", f"no live incident {request.match_info['id']!r}")
        except OutboxError as exc:
            # Applied in memory but not stored: the platform must retry (the retry answers the same).
            return _problem(503, "Service Unavailable", f"not stored, retry: {exc}")

    return handler


async def devices(request: web.Request) -> web.Response:
    gw = _gw(request)
    gb28181 = await asyncio.to_thread(gw.gb28181_status)
    return web.json_response(
        {
            "gb28181": gb28181,
            "links": [
                {
                    "name": h.name,
                    "state": h.state.value,
                    "since": h.since,
                    "restarts": h.restarts,
                    "last_error": h.last_error,
                }
                for h in gw.link_health()
            ],
        }
    )


async def site(request: web.Request) -> web.Response:
    s = _gw(request).loaded.config.site
    return web.json_response(
        {
            "box_id": s.box_id,
            "township": s.township,
            "village": s.village,
            "civil_code": s.civil_code,
            "latitude": s.latitude,
            "longitude": s.longitude,
        }
    )


async def outbox(request: web.Request) -> web.Response:
    cap = await asyncio.to_thread(_gw(request).outbox.capacity)
    return web.json_response(
        {
            "budget_bytes": cap.budget_bytes,
            "undelivered_bytes": cap.undelivered_bytes,
            "undelivered_events": cap.undelivered_events,
            "oldest_undelivered_age_s": round(cap.oldest_undelivered_age_s, 3),
            "dropped_total": cap.dropped_total,
            "window_s": cap.window_s,
            "intake_bytes_per_hour": round(cap.intake_bytes_per_hour, 1),
            "covers_hours": None if cap.covers_hours is None else round(cap.covers_hours, 2),
        }
    )


async def cameras(request: web.Request) -> web.Response:
    return web.json_response({"cameras": _gw(request).camera_set.status()})


async def camera_snapshot(request: web.Request) -> web.Response:
    gw, camera_id = _gw(request), request.match_info["id"]
    # A mistyped id and a camera that sends nothing call for different fixes: say which it is.
    if camera_id not in gw.camera_set:
        return _problem(404, "Not Found", f"no camera {camera_id!r} in the site file (GET /api/v1/cameras lists them)")
    jpeg = await gw.camera_set.snapshot(camera_id)
    if jpeg is None:
        return _problem(404, "Not Found", f"no frame from camera {camera_id!r} yet")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def evidence(request: web.Request) -> web.Response:
    found = await _gw(request).evidence(request.match_info["id"])
    if found is None:
        return _problem(404, "Not Found", f"no evidence {request.match_info['id']!r}")
    body, media_type = found
    return web.Response(body=body, content_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


async def page(request: web.Request) -> web.Response:
    request.app[PAGE_VIEW].camera_set.live_views.prepare()  # the live view is what the page asks for first
    html = resources.files("gateway").joinpath("static/index.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC_TYPES:
        raise web.HTTPNotFound()
    text = resources.files("gateway").joinpath(f"static/{name}").read_text(encoding="utf-8")
    return web.Response(text=text, content_type=_STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})


async def openapi(_request: web.Request) -> web.Response:
    text = resources.files("gateway").joinpath("openapi.json").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/json")


ROUTES: list[web.RouteDef] = [
    web.get("/healthz", healthz),
    web.get("/readyz", readyz),
    web.get("/metrics", metrics),
    web.get("/api/v1/openapi.json", openapi),
    web.get("/api/v1/events", events),
    web.get("/api/v1/incidents", list_incidents),
    web.get("/api/v1/incidents/{id}", get_incident),
    web.post("/api/v1/incidents/{id}/ack", _feedback_route("ack")),
    web.post("/api/v1/incidents/{id}/close", _feedback_route("close")),
    web.get("/api/v1/devices", devices),
    web.get("/api/v1/site", site),
    web.get("/api/v1/outbox", outbox),
    web.get("/api/v1/cameras", cameras),
    web.get("/api/v1/cameras/{id}/snapshot.jpg", camera_snapshot),
    web.get("/api/v1/evidence/{id}", evidence),
    web.get("/api/v1/me", me),
    web.post("/api/v1/cameras/{id}/live", live_offer),
    web.post("/api/v1/live/{id}/keepalive", live_keepalive),
    web.delete("/api/v1/live/{id}", live_close),
    web.get("/api/v1/cameras/{id}/zones", get_zones),
    web.put("/api/v1/cameras/{id}/zones", put_zones),
    web.get("/api/v1/cameras/{id}/motion", get_motion),
]

# The status page is not part of the API contract (and not in openapi.json).
PAGE_ROUTES: list[web.RouteDef] = [web.get("/", page), web.get("/static/{name}", static)]


def build_app(gw: GatewayView, extra_routes: list[web.RouteDef] | None = None) -> web.Application:
    app = web.Application(middlewares=[_auth], client_max_size=64 * 1024)
    app[GATEWAY] = gw
    app[PAGE_VIEW] = gw
    app.router.add_routes(ROUTES + PAGE_ROUTES + (extra_routes or []))
    return app


class ApiServer:
    """Runs the app with AppRunner/TCPSite inside the gateway's TaskGroup."""

    def __init__(self, gw: GatewayView) -> None:
        self._gw = gw
        self._runner: web.AppRunner | None = None
        api = gw.loaded.config.api
        self.address: tuple[str, int] = (api.listen, api.port)

    async def start(self) -> None:
        if not self._gw.api_token:
            log.error("%s", _EMPTY_TOKEN)
        self._runner = web.AppRunner(build_app(self._gw), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        listen, port = self.address
        site = web.TCPSite(self._runner, listen, port)
        try:
            await site.start()
        except OSError as exc:
            # The technician's usual mistakes (a second gateway or the demo on the port, an address
            # this box does not have) get one line naming the site file's field, not a traceback.
            field, hint = _BIND_HINTS.get(exc.errno or 0, ("port", "choose another [api] port"))
            loaded = self._gw.loaded
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(
                f"{loaded.path}:{loaded.line_of(('api', field))}: api.{field}: "
                f"cannot listen on {listen}:{port}: {why}: {hint}"
            ) from exc
        if self._runner.addresses:
            self.address = tuple(self._runner.addresses[0][:2])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
