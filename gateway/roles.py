"""Who may do what on the local API: the platform, the technician, and a read-only viewer.

Three bearer tokens, each a secret in the site file (``[api] token``, ``technician_token``,
``viewer_token``). The platform's token does what the platform does (the feed, ack and close);
only the technician's edits zones; the viewer's looks (every GET, and watching the live view).
"""

from __future__ import annotations

import enum
import hmac

from edge_config import LoadedConfig

__all__ = ["Role", "allowed", "role_of", "role_tokens"]


class Role(enum.StrEnum):
    PLATFORM = "platform"
    TECHNICIAN = "technician"
    VIEWER = "viewer"


# Routes that change the site file: the technician's alone.
_TECHNICIAN_ONLY = frozenset({("PUT", "/api/v1/cameras/{id}/zones")})
# What a viewer may do besides reading: open, keep and close a live view (it changes nothing).
_VIEWER_ACTIONS = frozenset(
    {
        ("POST", "/api/v1/cameras/{id}/live"),
        ("POST", "/api/v1/live/{id}/keepalive"),
        ("DELETE", "/api/v1/live/{id}"),
    }
)


def role_of(token: str, tokens: dict[Role, str]) -> Role | None:
    """The role whose token this is (compared in constant time; an empty token is nobody's)."""
    # Header bytes that are not UTF-8 reach us as lone surrogates: encoded back as they came, they
    # simply do not match (a plain encode() raised: a 500 and a traceback per request).
    given = token.encode("utf-8", "surrogateescape")
    found = None
    for role, expected in tokens.items():
        if expected and hmac.compare_digest(given, expected.encode()):
            found = role
    return found


def allowed(role: Role, method: str, route: str) -> bool:
    """Whether ``role`` may call ``method route`` (``route`` as written in the route table)."""
    if (method, route) in _TECHNICIAN_ONLY:
        return role is Role.TECHNICIAN
    if role is Role.VIEWER:
        return method in ("GET", "HEAD") or (method, route) in _VIEWER_ACTIONS
    return True


def role_tokens(loaded: LoadedConfig) -> dict[Role, str]:
    """Each configured role's token, read from its secret (OSError names the path, not the value)."""
    api, base = loaded.config.api, loaded.base_dir
    tokens = {Role.PLATFORM: api.token.read(base).get_secret_value().strip()}
    for role, ref in ((Role.TECHNICIAN, api.technician_token), (Role.VIEWER, api.viewer_token)):
        if ref is not None:
            tokens[role] = ref.read(base).get_secret_value().strip()
    return tokens
