"""RFC 9457 problem details: the one error shape every route of the local API answers with."""

from __future__ import annotations

import json

from aiohttp import web

__all__ = ["bad_request", "problem"]


def problem(status: int, title: str, detail: str) -> web.Response:
    # RFC 9457 problem details, so clients get one error shape everywhere.
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


def bad_request(detail: str) -> web.HTTPBadRequest:
    body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/problem+json")
