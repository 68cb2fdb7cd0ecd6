"""MANSCDP: the XML bodies of GB/T 28181 MESSAGEs (Application/MANSCDP+xml).

Pure code. Bodies are built as text, then encoded in the configured charset (characters the
charset lacks become XML character references, so the bytes always match the declaration).
Incoming bodies are decoded by their declaration, then by the configured charset, and parsed
only when they carry no DTD: a MANSCDP body never needs one, and refusing it closes the door on
entity expansion ("billion laughs") and external entities.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CONTENT_TYPE",
    "AlarmNotice",
    "CatalogItem",
    "ManscdpError",
    "Query",
    "alarm",
    "catalog_pages",
    "device_info",
    "device_status",
    "keepalive",
    "parse",
    "result_response",
]

CONTENT_TYPE = "Application/MANSCDP+xml"
MAX_XML_BYTES = 64 * 1024
_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"'][^>]*\?>")


class ManscdpError(ValueError):
    """A body we cannot read; ``status`` is the SIP answer (400 malformed, 413 too big, 415 charset)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Query:
    """What the platform asked: root (Query, Control, Notify, Response), CmdType, SN, DeviceID."""

    root: str
    cmd: str
    sn: str
    device_id: str
    element: ET.Element

    def text(self, path: str) -> str | None:
        found = self.element.find(path)
        return None if found is None or found.text is None else found.text.strip()


def parse(body: bytes, charset: str) -> Query:
    """Decode and parse a MANSCDP body. Raises :class:`ManscdpError`."""
    if len(body) > MAX_XML_BYTES:
        raise ManscdpError(f"XML body of {len(body)} bytes is over {MAX_XML_BYTES}", 413)
    m = _DECL.match(body)
    declared = m.group(1).decode("ascii") if m else None
    text = None
    for cs in dict.fromkeys(c for c in (declared, charset, "utf-8", "gb18030") if c is not None):
        try:
            text = body.decode(cs)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        raise ManscdpError(f"body is not text in {declared or charset} (nor UTF-8 or GB18030)", 415)
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise ManscdpError("XML with a DTD or entity declarations is refused (MANSCDP needs none)")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ManscdpError(f"malformed XML: {exc}") from None
    cmd, sn, dev = (root.findtext(t, "").strip() for t in ("CmdType", "SN", "DeviceID"))
    if not cmd:
        raise ManscdpError(f"<{root.tag}> without CmdType")
    return Query(root.tag, cmd, sn, dev, root)


def _element(parent: ET.Element, tag: str, value: object) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = "" if value is None else str(value)
    return el


def _encode(root: ET.Element, charset: str) -> bytes:
    ET.indent(root, space="  ")
    text = f'<?xml version="1.0" encoding="{charset}"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    return text.encode(charset, errors="xmlcharrefreplace")


def _root(kind: str, cmd: str, sn: int | str, device_id: str) -> ET.Element:
    root = ET.Element(kind)
    _element(root, "CmdType", cmd)
    _element(root, "SN", sn)
    _element(root, "DeviceID", device_id)
    return root


def keepalive(sn: int, device_id: str, charset: str) -> bytes:
    root = _root("Notify", "Keepalive", sn, device_id)
    _element(root, "Status", "OK")
    return _encode(root, charset)


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One channel (camera) in the catalog."""

    channel_id: str
    name: str
    civil_code: str
    parent_id: str
    online: bool
    longitude: float | None = None
    latitude: float | None = None
    address: str = ""
    grassroots_code: str | None = None
    manufacturer: str = "Township Edge"
    model: str = "ONVIF camera"


def catalog_pages(
    sn: str,
    device_id: str,
    items: Sequence[CatalogItem],
    page: int,
    charset: str,
    *,
    version: str = "2016",
    event: str | None = None,
) -> list[bytes]:
    """The Catalog answer split over MESSAGEs of at most ``page`` items: each says SumNum (all
    channels) and DeviceList Num (its own). An empty catalog is one page with Num 0. With
    ``event`` (ADD, ON, OFF, ...) it is a subscription's Notify instead: each item says that."""
    chunks = [items[i : i + page] for i in range(0, len(items), page)] or [[]]
    out = []
    for chunk in chunks:
        root = _root("Response" if event is None else "Notify", "Catalog", sn, device_id)
        _element(root, "SumNum", len(items))
        dl = ET.SubElement(root, "DeviceList", Num=str(len(chunk)))
        for it in chunk:
            item = ET.SubElement(dl, "Item")
            for tag, value in (
                ("DeviceID", it.channel_id),
                ("Name", it.name),
                ("Manufacturer", it.manufacturer),
                ("Model", it.model),
                ("Owner", "Owner"),
                ("CivilCode", it.civil_code),
                ("Address", it.address),
                ("Parental", 0),
                ("ParentID", it.parent_id),
                ("SafetyWay", 0),
                ("RegisterWay", 1),
                ("Secrecy", 0),
                ("Status", "ON" if it.online else "OFF"),
                ("Longitude", _coord(it.longitude)),
                ("Latitude", _coord(it.latitude)),
            ):
                _element(item, tag, value)
            if version == "2022" or it.grassroots_code is not None:
                _element(item, "BusinessGroupID", "")
                _element(item, "OrgCode", it.grassroots_code or "000000")
            if event is not None:
                _element(item, "Event", event)
        out.append(_encode(root, charset))
    return out


def _coord(value: float | None) -> str:
    return "0.0" if value is None else f"{value:.6f}"


def device_info(sn: str, device_id: str, name: str, channels: int, charset: str, *, firmware: str) -> bytes:
    root = _root("Response", "DeviceInfo", sn, device_id)
    for tag, value in (
        ("DeviceName", name),
        ("Result", "OK"),
        ("Manufacturer", "Township Edge"),
        ("Model", "edge-gateway"),
        ("Firmware", firmware),
        ("Channel", channels),
    ):
        _element(root, tag, value)
    return _encode(root, charset)


def device_status(sn: str, device_id: str, online: bool, when: str, charset: str) -> bytes:
    root = _root("Response", "DeviceStatus", sn, device_id)
    for tag, value in (
        ("Result", "OK"),
        ("Online", "ONLINE" if online else "OFFLINE"),
        ("Status", "OK" if online else "ERROR"),
        ("Encode", "ON"),
        ("Record", "OFF"),
        ("DeviceTime", when),
    ):
        _element(root, tag, value)
    return _encode(root, charset)


def result_response(cmd: str, sn: str, device_id: str, ok: bool, charset: str) -> bytes:
    """A Response with just a Result (the answer to a Control such as an alarm reset)."""
    root = _root("Response", cmd, sn, device_id)
    _element(root, "Result", "OK" if ok else "ERROR")
    return _encode(root, charset)


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """One alarm to notify: the channel, 1-4 priority, method/type codes, local time, place."""

    channel_id: str
    priority: int
    method: int
    alarm_type: int | None
    time: str
    description: str
    longitude: float | None
    latitude: float | None


def alarm(sn: int, a: AlarmNotice, charset: str) -> bytes:
    root = _root("Notify", "Alarm", sn, a.channel_id)
    for tag, value in (
        ("AlarmPriority", a.priority),
        ("AlarmMethod", a.method),
        ("AlarmTime", a.time),
        ("AlarmDescription", a.description),
        ("Longitude", _coord(a.longitude)),
        ("Latitude", _coord(a.latitude)),
    ):
        _element(root, tag, value)
    if a.alarm_type is not None:
        info = ET.SubElement(root, "Info")
        _element(info, "AlarmType", a.alarm_type)
    return _encode(root, charset)
