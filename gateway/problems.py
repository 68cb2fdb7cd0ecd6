"""RFC 9457 problem details: the one error shape every route of the local API answers with."""

from __future__ import annotations

import json

from aiohttp import web

__all__ = ["bad_request", "problem"]


def problem(status: int, title: str, detail: str, code: str | None = None) -> web.Response:
    # RFC 9457 problem details, so clients get one error shape everywhere; ``code`` (an extension
    # member) names the reason for a client that says it in its own words.
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if code is not None:
        body["code"] = code
    return web.json_response(
        body,
        status=status,
        content_type="application/problem+json",
    )


def bad_request(detail: str) -> web.HTTPBadRequest:
    body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/problem+json")
