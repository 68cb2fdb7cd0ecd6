"""The technician's page's routes: who the caller is, the live view over WebRTC, and zones.

They sit beside :mod:`gateway.api` (which lists them in its one route table and checks every
caller's role first) and ask the gateway only what :class:`PageView` lists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from typing import Any, Protocol

from aiohttp import web

from gateway.cameras import CameraSet
from gateway.live_view import LiveViewRefused
from gateway.problems import bad_request, problem
from gateway.roles import Role
from gateway.zones import ZoneError, ZoneSpec, parse_zones

__all__ = [
    "PAGE_VIEW",
    "ROLE",
    "PageView",
    "get_motion",
    "get_zones",
    "live_close",
    "live_keepalive",
    "live_offer",
    "me",
    "put_zones",
]


class PageView(Protocol):
    """What the page's routes may ask of the gateway (``gateway.app.Gateway`` is one)."""

    tokens: dict[Role, str]
    """Each role's bearer token (the platform's is also ``api_token``)."""
    camera_set: CameraSet

    async def save_zones(self, camera_id: str, zones: list[ZoneSpec]) -> dict[str, Any]: ...


PAGE_VIEW: web.AppKey[PageView] = web.AppKey("page_view", object)  # type: ignore[arg-type]
ROLE: web.RequestKey[Role] = web.RequestKey("role", Role)  # the caller's role, set by gateway.api's _auth


def _view(request: web.Request) -> PageView:
    return request.app[PAGE_VIEW]


async def me(request: web.Request) -> web.Response:
    """Which role the caller's token has, so that the page shows only what it may do."""
    return web.json_response({"role": request[ROLE].value})


def _page_address(request: web.Request) -> str:
    """This box's address as the browser reached it (the live view offers it to ICE)."""
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    host = str(sock[0]) if sock else "127.0.0.1"
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
    return host


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("body is not JSON") from None


async def live_offer(request: web.Request) -> web.Response:
    """POST an SDP offer for a camera's live view; the answer says relay or encode."""
    gw, camera_id = _view(request), request.match_info["id"]
    body = await _json_body(request)
    if not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        raise bad_request("body needs {'type': 'offer', 'sdp': '...'}")
    try:
        answer = await gw.camera_set.live_views.offer(camera_id, body["sdp"], _page_address(request))
    except LiveViewRefused as exc:
        titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests"}
        return problem(exc.status, titles.get(exc.status, "Error"), exc.detail, exc.code)
    return web.json_response(
        {
            "type": "answer",
            "sdp": answer.sdp,
            "session": answer.session,
            "mode": answer.mode,
            "codec": answer.codec,
            "idle_s": answer.idle_s,
        }
    )


async def live_keepalive(request: web.Request) -> web.Response:
    if not _view(request).camera_set.live_views.keepalive(request.match_info["id"]):
        return problem(404, "Not Found", "no such live view (closed, or idle too long)")
    return web.Response(status=204)


async def live_close(request: web.Request) -> web.Response:
    if not await _view(request).camera_set.live_views.close(request.match_info["id"]):
        return problem(404, "Not Found", "no such live view")
    return web.Response(status=204)


async def get_zones(request: web.Request) -> web.Response:
    gw, camera_id = _view(request), request.match_info["id"]
    if camera_id not in gw.camera_set:
        return problem(404, "Not Found", f"no camera {camera_id!r} in the site file")
    return web.json_response(gw.camera_set.zones_json(camera_id))


async def get_motion(request: web.Request) -> web.Response:
    gw, camera_id = _view(request), request.match_info["id"]
    if camera_id not in gw.camera_set:
        return problem(404, "Not Found", f"no camera {camera_id!r} in the site file")
    return web.json_response(gw.camera_set.motion_json(camera_id), headers={"Cache-Control": "no-store"})


async def put_zones(request: web.Request) -> web.Response:
    """The technician saves a camera's zones: checked, written into the site file, reloaded."""
    gw, camera_id = _view(request), request.match_info["id"]
    if camera_id not in gw.camera_set:
        return problem(404, "Not Found", f"no camera {camera_id!r} in the site file")
    try:
        zones = parse_zones(await _json_body(request))
        return web.json_response(await gw.save_zones(camera_id, zones))
    except ZoneError as exc:
        resp = problem(422, "Unprocessable Content", "; ".join(exc.problems))
        return resp
    except OSError as exc:
        return problem(500, "Internal Server Error", f"cannot write the site file: {exc.strerror or exc}")
