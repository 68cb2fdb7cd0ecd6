"""TLS client contexts for the MQTT links and the webhook, from a site's ``tls`` settings.

Every failure to load a file is a :class:`DriverProtocolError` naming the link and the file, so a
wrong path shows on the status page and in ``doctor`` as what it is, not as a refused connection.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from edge_config.tls import TlsSettings
from edge_core.errors import DriverProtocolError

__all__ = ["TlsFiles", "client_context", "tls_failure", "tls_files"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The settings' files as paths (for a library that wants names rather than a context)."""

    ca_file: Path | None
    client_cert: Path | None
    client_key: Path | None


def tls_files(tls: TlsSettings, base_dir: Path) -> TlsFiles:
    def resolve(name: str | None) -> Path | None:
        return None if name is None else base_dir / name

    key = None if tls.client_key is None else tls.client_key.path(base_dir)
    return TlsFiles(resolve(tls.ca_file), resolve(tls.client_cert), key)


def client_context(tls: TlsSettings, base_dir: Path, *, link: str) -> ssl.SSLContext:
    """A verifying client context (TLS 1.2 at least, host name checked) for ``link``."""
    try:
        files = tls_files(tls, base_dir)
    except FileNotFoundError as exc:  # a credential asked for outside systemd
        raise DriverProtocolError(f"TLS client_key: {exc}", device_id=link, code="tls-config") from None
    for label, path in (
        ("CA file", files.ca_file),
        ("client_cert", files.client_cert),
        ("client_key", files.client_key),
    ):
        if path is not None and not path.is_file():
            raise DriverProtocolError(f"TLS {label} {path} not found", device_id=link, code="tls-config")
    what = f"CA file {files.ca_file}"
    try:
        # With a CA file, only that file is trusted: a county CA must not widen to every public CA.
        ctx = ssl.create_default_context(cafile=None if files.ca_file is None else str(files.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if files.client_cert is not None and files.client_key is not None:
            what = f"client_cert {files.client_cert} or client_key {files.client_key}"
            ctx.load_cert_chain(files.client_cert, files.client_key)
    except PermissionError:
        raise DriverProtocolError(f"TLS {what}: permission denied", device_id=link, code="tls-config") from None
    except ssl.SSLError as exc:
        # OpenSSL's reason ("PEM lib", "KEY_VALUES_MISMATCH") is kept: it tells which is wrong.
        raise DriverProtocolError(
            f"TLS {what}: not a usable PEM certificate or key ({exc.reason or exc})",
            device_id=link,
            code="tls-config",
        ) from None
    return ctx


def tls_failure(exc: BaseException) -> str:
    """What went wrong in a handshake, in words a technician can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate is not trusted ({exc.verify_message}): check tls.ca_file"
    reason = exc.reason if isinstance(exc, ssl.SSLError) else None
    return f"TLS handshake failed ({reason or exc})"
