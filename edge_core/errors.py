"""The gateway's error hierarchy, in one place.

Every layer raises these types; callers tell errors apart by type, never by comparing ``code``
strings (``code`` is a short reason for people and the status page).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DriverAuthError",
    "DriverConnectError",
    "DriverError",
    "DriverProtocolError",
    "DriverTimeoutError",
    "GatewayError",
    "LinkHalted",
    "OutboxError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A site configuration file is unreadable or invalid.

    ``problems`` holds one line per problem, each naming file, line and field path.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


class DriverError(GatewayError):
    """A device driver failed; ``device_id`` names the device, ``code`` a short machine-readable reason."""

    def __init__(self, message: str, *, device_id: str, code: str = "error") -> None:
        super().__init__(f"{device_id}: {message}")
        self.device_id = device_id
        self.code = code


class DriverConnectError(DriverError):
    """The device or its broker could not be reached, refused us, or dropped the connection."""


class DriverProtocolError(DriverError):
    """The device answered, but not in a way the driver understands (bad node, bad schema, auth)."""


class DriverAuthError(DriverProtocolError):
    """The device refused our credentials: retrying with the same ones will not help, so callers
    that retry other faults let this one through."""

    def __init__(self, message: str, *, device_id: str, code: str = "auth") -> None:
        super().__init__(message, device_id=device_id, code=code)


class DriverTimeoutError(DriverError):
    """The device did not answer or stopped sending within the configured time."""


class LinkHalted(DriverError):
    """The link must not be retried until someone acts (a receiver that refuses every event):
    its supervisor reports FAILED with this message and waits to be resumed."""


class OutboxError(GatewayError):
    """The durable outbox cannot store or read events (disk full, corrupt database)."""
