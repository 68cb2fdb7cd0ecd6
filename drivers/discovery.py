"""ONVIF camera discovery: a WS-Discovery probe, a bounded wait, and what each camera says about itself.

:func:`discover` sends a ``Probe`` for ``dn:NetworkVideoTransmitter`` to the WS-Discovery multicast
group (or to any ``target`` address, such as ``127.0.0.1:3702`` in tests), collects ``ProbeMatches``
until ``timeout`` and then asks each camera for its device information without credentials (many
cameras answer; when one does not, manufacturer and model come from its scopes).
:func:`discover_command` is ``edge-gateway discover``: a table, or config stanzas with ``--config``.

The probe target can also be set with ``$EDGE_GATEWAY_DISCOVERY_TARGET`` (``host:port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import socket
import sys
import time
import unicodedata
import uuid
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from lxml import etree

from edge_core.i18n import say

__all__ = ["WS_DISCOVERY_GROUP", "WS_DISCOVERY_PORT", "DiscoveredCamera", "discover", "discover_command"]

WS_DISCOVERY_GROUP = "239.255.255.250"
WS_DISCOVERY_PORT = 3702
TARGET_ENV = "EDGE_GATEWAY_DISCOVERY_TARGET"

_NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
}


@dataclasses.dataclass(frozen=True, slots=True)
class DiscoveredCamera:
    """One camera that answered the probe."""

    endpoint: str
    host: str
    port: int
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    types: str
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""
    location: str = ""
    info_source: str = "scopes"
    """``device`` when GetDeviceInformation answered, else ``scopes``."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _probe_message(message_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{_NS["s"]}" xmlns:a="{_NS["a"]}" xmlns:d="{_NS["d"]}" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>'
        '<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>'
        f"<a:MessageID>{escape(message_id)}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>"
        "</a:ReplyTo>"
        '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
        "</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def _scope_value(scopes: tuple[str, ...], key: str) -> str:
    prefix = f"onvif://www.onvif.org/{key}/"
    for scope in scopes:
        if scope.lower().startswith(prefix.lower()):
            return unquote(scope[len(prefix) :]).replace("_", " ").strip()
    return ""


def _parse_match(data: bytes, message_id: str) -> list[DiscoveredCamera]:
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return []
    relates = root.findtext(".//a:RelatesTo", default="", namespaces=_NS).strip()
    if relates and relates != message_id:
        return []
    out = []
    for match in root.iterfind(".//d:ProbeMatch", _NS):
        endpoint = match.findtext("a:EndpointReference/a:Address", default="", namespaces=_NS).strip()
        xaddrs = tuple(match.findtext("d:XAddrs", default="", namespaces=_NS).split())
        scopes = tuple(match.findtext("d:Scopes", default="", namespaces=_NS).split())
        types = " ".join(match.findtext("d:Types", default="", namespaces=_NS).split())
        if not xaddrs:
            continue
        first = urlsplit(xaddrs[0])
        out.append(
            DiscoveredCamera(
                endpoint=endpoint or xaddrs[0],
                host=first.hostname or "",
                port=first.port or (443 if first.scheme == "https" else 80),
                xaddrs=xaddrs,
                scopes=scopes,
                types=types,
                manufacturer=_scope_value(scopes, "name"),
                model=_scope_value(scopes, "hardware"),
                location=_scope_value(scopes, "location"),
            )
        )
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.found: dict[str, DiscoveredCamera] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for cam in _parse_match(data, self.message_id):
            self.found.setdefault(cam.endpoint, cam)


def _parse_target(target: str | tuple[str, int] | None) -> tuple[str, int]:
    if target is None:
        target = os.environ.get(TARGET_ENV) or f"{WS_DISCOVERY_GROUP}:{WS_DISCOVERY_PORT}"
    if isinstance(target, tuple):
        return target
    host, _, port = target.rpartition(":")
    if not host:
        return target, WS_DISCOVERY_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"probe target {target!r} ({TARGET_ENV}?) is not host:port, as in 239.255.255.250:3702")
    return host, int(port)


async def discover(
    timeout: float = 3.0,
    *,
    target: str | tuple[str, int] | None = None,
    interface: str | None = None,
    fetch_info: bool = True,
) -> list[DiscoveredCamera]:
    """Probe for ONVIF cameras and return them sorted by address; waits at most ``timeout`` s.

    ``target`` is where the probe goes (default: the WS-Discovery multicast group, or
    ``$EDGE_GATEWAY_DISCOVERY_TARGET``); ``interface`` is the local IPv4 address to send from.
    """
    host, port = _parse_target(target)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    if interface:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    bind_host = interface or ("127.0.0.1" if host.startswith("127.") else "0.0.0.0")
    sock.bind((bind_host, 0))
    sock.setblocking(False)
    message_id = f"urn:uuid:{uuid.uuid4()}"
    transport, proto = await loop.create_datagram_endpoint(lambda: _Collector(message_id), sock=sock)
    deadline = time.monotonic() + timeout
    info_budget = min(2.0, timeout / 2) if fetch_info else 0.0
    try:
        probe = _probe_message(message_id)
        # UDP may drop a datagram: send the probe twice (WS-Discovery's own retransmission).
        for _ in range(2):
            transport.sendto(probe, (host, port))
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic() - info_budget)))
        await asyncio.sleep(max(0.0, deadline - time.monotonic() - info_budget))
    finally:
        transport.close()
    cams = sorted(proto.found.values(), key=lambda c: (c.host, c.port))
    if fetch_info and cams:
        remaining = max(0.5, deadline - time.monotonic())
        cams = list(await asyncio.gather(*(_with_info(c, remaining) for c in cams)))
    return cams


async def _with_info(cam: DiscoveredCamera, timeout: float) -> DiscoveredCamera:
    """Ask the camera's GetDeviceInformation without credentials; keep the scopes' values if refused."""
    from onvif import ONVIFCamera

    client: Any = ONVIFCamera(cam.host, cam.port, None, None)
    try:
        async with asyncio.timeout(timeout):
            devicemgmt = await client.create_devicemgmt_service()
            info = await devicemgmt.authless_GetDeviceInformation()
    except Exception:
        return cam
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return dataclasses.replace(
        cam,
        manufacturer=str(info.Manufacturer or cam.manufacturer),
        model=str(info.Model or cam.model),
        serial=str(info.SerialNumber or ""),
        firmware=str(info.FirmwareVersion or ""),
        info_source="device",
    )


def _device_id(cam: DiscoveredCamera, used: set[str]) -> str:
    base = cam.serial or cam.model or cam.host
    ident = "cam-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.").lower()[:50]
    candidate, n = ident, 2
    while candidate in used:
        candidate, n = f"{ident}-{n}", n + 1
    used.add(candidate)
    return candidate


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_stanza(cam: DiscoveredCamera, device_id: str) -> str:
    """A ``[[devices]]`` TOML stanza for ``cam`` that validates as a CameraDevice."""
    name = " ".join(x for x in (cam.manufacturer, cam.model) if x) or cam.host
    cred = re.sub(r"[^A-Za-z0-9_.-]", "_", device_id) + "_password"
    lines = [
        f"# {cam.manufacturer or '?'} {cam.model or '?'} serial {cam.serial or '?'} at {cam.address}",
        "[[devices]]",
        'kind = "onvif"',
        f"id = {_toml_str(device_id)}",
        f"name = {_toml_str(name[:128])}",
        f"host = {_toml_str(cam.host)}",
        f"port = {cam.port}",
        'username = "admin"  # the camera\'s ONVIF user',
        # The same place the unit and the README keep every other credential.
        f"password = {{ credential = {_toml_str(cred)} }}"
        f"  # LoadCredential={cred}:/etc/edge-gateway/credentials/{cred}",
        '# national_id = ""  # 20-digit GB/T 28181 device id, if the platform assigned one',
    ]
    if cam.location:
        lines.append(f"location = {{ zone = {_toml_str(cam.location[:128])} }}")
    lines += ["", "  [devices.stream]", '  mode = "keyframes"  # or "rtsp" (all frames) or "snapshot"']
    return "\n".join(lines) + "\n"


def discover_command(
    timeout: float,
    as_config: bool,
    *,
    target: str | None = None,
    out: TextIO | None = None,
) -> int:
    """``edge-gateway discover``: print a table (or config stanzas); 0 if a camera answered, else 1."""
    stream = out or sys.stdout
    try:
        cams = asyncio.run(discover(timeout, target=target))
    except (OSError, ValueError) as exc:
        print(say("discover.failed", why=exc), file=sys.stderr)
        return 2
    if not cams:
        print(say("discover.none", s=f"{timeout:g}"), file=sys.stderr)
        return 1
    if as_config:
        used: set[str] = set()
        stream.write("\n".join(config_stanza(c, _device_id(c, used)) for c in cams))
        return 0
    rows = [tuple(say(f"discover.col.{c}") for c in ("address", "manufacturer", "model", "serial", "scopes"))]
    for c in cams:
        short = " ".join(s.removeprefix("onvif://www.onvif.org/") for s in c.scopes)
        rows.append((c.address, c.manufacturer or "-", c.model or "-", c.serial or "-", short))
    widths = [max(_columns(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        stream.write("  ".join(r[i] + " " * (widths[i] - _columns(r[i])) for i in range(4)) + "  " + r[4] + "\n")
    return 0


def _columns(text: str) -> int:
    """Terminal columns of ``text``: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
