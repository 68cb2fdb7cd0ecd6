"""`edge-gateway doctor`: what a field technician runs when something is wrong.

Each check prints one line, OK / WARN / FAIL, and for anything not OK what to do about it. It
only reads: it opens TCP connections to the configured peers (no protocol traffic, no logins),
looks at the state directory and at the installed unit's credentials, and asks a running gateway
(its own API) how each camera is doing, such as a camera that cannot gate on its own motion; it
changes nothing.

Why this file is long: it is one command whose checks a technician reads top to bottom in the
order they print; each check is a small function here, in that order, sharing `Check` and the
loaded site, so whoever changes what doctor says finds all of it in one place.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from drivers.tls import client_context, tls_failure
from edge_config import LoadedConfig, check_secrets, load
from edge_config._base import SecretRef
from edge_config.camera import CameraDevice
from edge_config.loader import models_of
from edge_config.opcua import OpcUaDevice
from edge_config.tls import TlsSettings
from edge_core.errors import ConfigError, DriverProtocolError
from edge_core.i18n import say
from gateway.app import default_state_dir
from gateway.gb28181.telemetry import probe
from gateway.outbox import CAPACITY_WINDOW_S, covers_hours, intake_since

__all__ = ["UNIT", "Check", "run_doctor"]

_CONNECT_TIMEOUT_S = 3.0
UNIT = Path("/etc/systemd/system/edge-gateway.service")
"""Where the README installs the unit; its LoadCredential= lines say which secrets the service gets."""


@dataclass(frozen=True)
class Check:
    status: str  # "OK", "WARN" or "FAIL"
    what: str
    hint: str = ""

    def line(self) -> str:
        return f"{self.status:<4}  {self.what}" + (f"\n      -> {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class _Peer:
    name: str
    host: str
    port: int
    hint: str
    tls: TlsSettings | None = None
    seeds: str = ""
    """Peers with the same non-empty value are alternatives (a cluster's seeds): one down is a
    warning while another answers."""


async def _reach(peer: _Peer, base_dir: Path) -> tuple[str, str] | None:
    """None when a connection (with its TLS handshake, if any) opens in time, else (why, hint)."""
    ctx: ssl.SSLContext | None = None
    if peer.tls is not None:
        try:
            ctx = client_context(peer.tls, base_dir, link=peer.name)
        except DriverProtocolError as exc:
            return str(exc).removeprefix(f"{peer.name}: "), say("doctor.hint.fix_path")
    try:
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            _reader, writer = await asyncio.open_connection(peer.host, peer.port, ssl=ctx)
    except TimeoutError:
        return say("doctor.no_answer_within", s=f"{_CONNECT_TIMEOUT_S:.0f}"), peer.hint
    except ssl.SSLError as exc:
        return tls_failure(exc), say("doctor.hint.tls_ca")
    except ConnectionRefusedError:
        # asyncio's own wording ("Connect call failed ('10.0.0.5', 1883)") repeats the address
        # and hides the one fact that matters: the host answered, the port did not.
        return say("doctor.refused"), peer.hint
    except OSError as exc:
        return exc.strerror or type(exc).__name__, peer.hint
    writer.close()
    return None


def _peers(loaded: LoadedConfig) -> list[_Peer]:
    cfg = loaded.config
    peers = [
        _Peer(say("doctor.peer.mqtt", id=b.id), b.host, b.port, say("doctor.hint.broker"), b.tls) for b in cfg.brokers
    ]
    for d in cfg.devices:
        if isinstance(d, OpcUaDevice):
            u = urlsplit(d.endpoint)
            peers.append(
                _Peer(say("doctor.peer.opcua", id=d.id), u.hostname or "", u.port or 4840, say("doctor.hint.plc"))
            )
        elif isinstance(d, CameraDevice):
            peers.append(_Peer(say("doctor.peer.camera", id=d.id), d.host, d.port, say("doctor.hint.camera")))
    wh = cfg.upstream.webhook
    if wh is not None:
        u = urlsplit(str(wh.url))
        https = u.scheme == "https"
        peers.append(
            _Peer(
                say("doctor.peer.webhook"),
                u.hostname or "",
                u.port or (443 if https else 80),
                say("doctor.hint.webhook"),
                # An https webhook without a tls table still verifies, against the system's CAs.
                (wh.tls or TlsSettings()) if https else None,
            )
        )
    nc = cfg.upstream.nats
    if nc is not None:
        for server in nc.servers:
            u = urlsplit(server)
            tls = nc.tls or (TlsSettings() if u.scheme == "tls" else None)
            peers.append(
                _Peer(
                    say("doctor.peer.nats", server=f"{u.hostname}:{u.port or 4222}"),
                    u.hostname or "",
                    u.port or 4222,
                    say("doctor.hint.nats"),
                    tls,
                    seeds="nats",
                )
            )
    return peers


def _outage_check(conn: sqlite3.Connection, budget: int) -> Check:
    """How long an uplink outage the budget holds, at the rate events came in over the last day."""
    now = time.time()
    delivered = conn.execute("SELECT COALESCE(MIN(seq), 0) FROM cursors").fetchone()[0]
    owed = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM events WHERE seq > ?", (delivered,)).fetchone()[0]
    intake, history_start = intake_since(conn, now - CAPACITY_WINDOW_S)
    per_hour, hours = covers_hours(budget - owed, intake, history_start, now, CAPACITY_WINDOW_S)
    if hours is None:
        return Check("OK", say("doctor.outbox.no_events"))
    text = say("doctor.outbox.holds", rate=f"{per_hour / 1024:,.1f} KiB/h", hours=f"{hours:,.1f}")
    if hours < 24:
        return Check("WARN", text, say("doctor.hint.outbox_budget"))
    return Check("OK", text)


def _state_checks(loaded: LoadedConfig) -> list[Check]:
    cfg = loaded.config
    state = default_state_dir(cfg)
    out: list[Check] = []
    if not state.exists():
        return [
            Check(
                "WARN",
                say("doctor.state.missing", path=state),
                say("doctor.hint.state_created"),
            )
        ]
    try:
        with tempfile.NamedTemporaryFile(dir=state):
            pass
        out.append(Check("OK", say("doctor.state.writable", path=state)))
    except OSError as exc:
        out.append(
            Check(
                "FAIL",
                say("doctor.state.not_writable", path=state, why=exc.strerror),
                say("doctor.hint.state_perms"),
            )
        )
    free_mb = shutil.disk_usage(state).free / 2**20
    need = cfg.outbox.budget_mb
    if free_mb < need:
        out.append(
            Check(
                "WARN",
                say("doctor.disk.low", free=f"{free_mb:.0f}", need=f"{need:.0f}"),
                say("doctor.hint.disk"),
            )
        )
    else:
        out.append(Check("OK", say("doctor.disk.ok", free=f"{free_mb:.0f}", need=f"{need:.0f}")))
    db = state / "outbox.sqlite3"
    if db.exists():
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                ok = conn.execute("PRAGMA quick_check").fetchone()[0]
                n = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                held = _outage_check(conn, int(need * 2**20)) if ok == "ok" else None
            out.append(
                Check(
                    "OK" if ok == "ok" else "FAIL",
                    say("doctor.outbox.integrity", path=db, result=ok, n=n),
                    "" if ok == "ok" else say("doctor.hint.outbox_corrupt"),
                )
            )
            if held is not None:
                out.append(held)
        except sqlite3.Error as exc:
            out.append(
                Check("FAIL", say("doctor.outbox.unreadable", path=db, why=exc), say("doctor.hint.outbox_unreadable"))
            )
    cache = Path(os.environ.get("NUMBA_CACHE_DIR", state / "numba-cache"))
    out.append(
        Check(
            "OK" if os.access(cache if cache.exists() else cache.parent, os.W_OK) else "WARN",
            say("doctor.numba", path=cache),
            "" if os.access(cache if cache.exists() else cache.parent, os.W_OK) else say("doctor.hint.numba"),
        )
    )
    return out


def _unit_credentials(unit: Path) -> tuple[dict[str, Path | None], set[str]]:
    """LoadCredential=NAME[:FILE] of the unit and its drop-ins, as systemd reads them: NAME -> FILE
    (None when systemd looks the name up in its own credential store); and the names that also
    have a SetCredential= default, which systemd uses instead of failing when the file is missing."""
    loads: dict[str, Path | None] = {}
    defaults: set[str] = set()
    for f in [unit, *sorted(unit.with_name(unit.name + ".d").glob("*.conf"))]:
        for raw in f.read_text(encoding="utf-8").splitlines():
            key, sep, value = raw.strip().partition("=")
            if not sep or key.strip() not in ("LoadCredential", "SetCredential"):
                continue
            name, _, source = value.strip().partition(":")
            target: dict[str, Path | None] | set[str] = loads if key.strip() == "LoadCredential" else defaults
            if not name:
                target.clear()  # an empty assignment resets the list (how a drop-in removes lines)
            elif key.strip() == "SetCredential":
                defaults.add(name)
            else:
                loads[name] = Path(source) if source else None
    return loads, defaults


def _is_blank(path: Path) -> bool:
    """Empty as SecretRef.read sees it (trailing newlines are not part of the secret); a file
    doctor may not read is left to the checks that already say so."""
    try:
        return not path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return False


def _is_file(path: Path) -> bool | None:
    try:
        return path.is_file()
    except PermissionError:
        return None


def _credential_checks(loaded: LoadedConfig, unit: Path) -> list[Check]:
    """A technician's shell has no $CREDENTIALS_DIRECTORY: check the unit hands over every
    credential the site file names, and that each file it loads from exists, since systemd
    refuses to start a service whose LoadCredential= file is missing."""
    loads, defaults = _unit_credentials(unit)
    refs = (ref for _loc, ref in models_of(loaded.config, (), SecretRef))
    names = list(dict.fromkeys(r.credential for r in refs if r.credential))
    out: list[Check] = []
    for name in [*names, *(n for n in loads if n not in names)]:
        source = loads.get(name)
        quoted = repr(name)
        if name not in loads:
            out.append(
                Check(
                    "FAIL",
                    say("doctor.cred.not_loaded", name=quoted, unit=unit),
                    say("doctor.hint.cred_add", name=name),
                )
            )
        elif source is None:
            out.append(Check("OK", say("doctor.cred.store", name=quoted)))
        elif (found := _is_file(source)) is None:
            out.append(
                Check("WARN", say("doctor.cred.cannot_look", name=quoted, path=source), say("doctor.hint.as_root"))
            )
        elif not found and name in defaults and name not in names:
            out.append(Check("OK", say("doctor.cred.unused", name=quoted, path=source)))
        elif not found and name in defaults:
            out.append(
                Check(
                    "FAIL",
                    say("doctor.cred.missing_default", name=quoted, path=source),
                    say("doctor.hint.cred_create_blank", blank=say("doctor.hint.blank")),
                )
            )
        elif not found:
            used = say("doctor.cred.named" if name in names else "doctor.cred.not_named")
            out.append(
                Check(
                    "FAIL",
                    say("doctor.cred.missing", name=quoted, path=source),
                    say("doctor.hint.cred_create", used=used),
                )
            )
        elif name in names and _is_blank(source):
            out.append(Check("FAIL", say("doctor.cred.empty", name=quoted, path=source), say("doctor.hint.blank")))
        else:
            out.append(Check("OK", say("doctor.cred.ok", name=quoted, path=source)))
    return out


def _api_base(loaded: LoadedConfig) -> str:
    api = loaded.config.api
    host = "127.0.0.1" if api.listen in ("0.0.0.0", "::") else api.listen
    return f"http://{host}:{api.port}"


async def _camera_checks(loaded: LoadedConfig) -> list[Check]:
    """What the running gateway says of each camera: a camera that cannot gate on its own motion
    (it falls back to analysing every frame) or sends no events of its own is named, with the fix."""
    if not any(isinstance(d, CameraDevice) for d in loaded.config.devices):
        return []
    try:
        token = loaded.config.api.token.read(loaded.base_dir).get_secret_value().strip()
    except OSError as exc:
        return [Check("WARN", say("doctor.cameras.no_token", why=exc))]
    url = f"{_api_base(loaded)}/api/v1/cameras"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)) as s,
            s.get(url, headers={"Authorization": f"Bearer {token}"}) as r,
        ):
            r.raise_for_status()
            cameras = (await r.json()).get("cameras", [])
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return [Check("WARN", say("doctor.cameras.not_listed", url=url, why=type(exc).__name__))]
    out: list[Check] = []
    for cam in cameras:
        name = say("doctor.camera", id=cam.get("id"))
        if cam.get("gating_fallback"):
            out.append(
                Check(
                    "WARN",
                    f"{name} {cam['gating_fallback']}",
                    say("doctor.hint.gating", id=cam.get("id")),
                )
            )
        elif cam.get("events_unavailable") and cam["events_unavailable"] != "events = false in the site file":
            out.append(
                Check(
                    "WARN",
                    say("doctor.camera.no_events", camera=name, why=cam["events_unavailable"]),
                    say("doctor.hint.events"),
                )
            )
        else:
            out.append(
                Check(
                    "OK",
                    say(
                        "doctor.camera.ok",
                        camera=name,
                        state=cam.get("state"),
                        gating=cam.get("gating_in_force"),
                        analysed=cam.get("analysed"),
                    ),
                )
            )
    return out


async def _api_check(loaded: LoadedConfig) -> Check:
    url = f"{_api_base(loaded)}/healthz"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)) as s, s.get(url) as r:
            body = await r.json()
        return Check("OK", say("doctor.api.ok", url=url, status=body.get("status")))
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return Check(
            "WARN", say("doctor.api.none", url=url), "systemctl status edge-gateway; journalctl -u edge-gateway -n 50"
        )


async def _gb28181_checks(loaded: LoadedConfig) -> list[Check]:
    """Each county video platform: does a SIP server answer there (one OPTIONS, no REGISTER: a
    second registration with the box's id would replace the daemon's), and is the running
    daemon registered (its link's state and last error from /api/v1/devices)?"""
    gbs = loaded.config.upstream.gb28181
    if not gbs:
        return []
    api = loaded.config.api
    host = "127.0.0.1" if api.listen in ("0.0.0.0", "::") else api.listen
    links: dict[str, dict[str, Any]] = {}
    try:
        token = api.token.read(loaded.base_dir).get_secret_value()
        timeout = aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession(timeout=timeout, headers=headers) as s,
            s.get(f"http://{host}:{api.port}/api/v1/devices") as r,
        ):
            links = {link["name"]: link for link in (await r.json()).get("links", [])}
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError, KeyError, TypeError):
        pass  # no running gateway (the API check says so), or no token to ask it with
    checks = []
    for gb in gbs:
        where = f"{gb.host}:{gb.port}/{gb.transport}"
        try:
            answer = await probe(gb, _CONNECT_TIMEOUT_S)
            checks.append(Check("OK", say("doctor.gb.answers", id=gb.id, where=where, answer=answer)))
        except (OSError, TimeoutError) as exc:
            why = say("doctor.gb.no_answer") if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            checks.append(
                Check(
                    "FAIL",
                    say("doctor.gb.unreachable", id=gb.id, where=where, why=why),
                    say("doctor.hint.gb_route"),
                )
            )
        link = links.get(f"upstream:gb28181:{gb.id}")
        if link is None:
            continue
        if link.get("state") == "connected":
            checks.append(Check("OK", say("doctor.gb.registered", id=gb.id, device_id=gb.device_id)))
        else:
            why = f": {link['last_error']}" if link.get("last_error") else ""
            checks.append(
                Check(
                    "FAIL",
                    say("doctor.gb.not_registered", id=gb.id, state=link.get("state"), why=why),
                    say("doctor.hint.gb_register"),
                )
            )
    return checks


def _load_site(path: Path) -> LoadedConfig | None:
    """The site file, or None after printing why it cannot be used."""
    if not path.exists():
        print(Check("FAIL", say("doctor.site.missing", path=path), say("doctor.hint.no_site")).line())
        return None
    try:
        return load(path)
    except ConfigError as exc:
        print(Check("FAIL", say("doctor.site.invalid", path=path), say("doctor.hint.site_invalid")).line())
        for line in exc.problems:
            print(f"      {line}")
        return None


def _secret_checks(loaded: LoadedConfig, unit: Path) -> list[Check]:
    problems, notes = check_secrets(loaded)
    checks = [
        Check(
            "FAIL",
            p,
            say(
                "doctor.hint.blank"
                if p.endswith(" is empty")
                else "doctor.hint.fix_path"
                if " not found" in p
                else "doctor.hint.secret_create"
            ),
        )
        for p in problems
    ]
    if "CREDENTIALS_DIRECTORY" not in os.environ and unit.is_file():
        # The notes only say a credential was not checked here; the unit says where it comes from.
        return checks + _credential_checks(loaded, unit)
    return checks + [Check("WARN", n) for n in notes]


async def run_doctor(path: Path, unit: Path = UNIT) -> int:
    loaded = _load_site(path)
    if loaded is None:
        return 1
    checks = [
        Check(
            "OK",
            say(
                "doctor.site.ok",
                path=path,
                box=loaded.config.site.box_id,
                devices=len(loaded.config.devices),
                rules=len(loaded.config.rules),
            ),
        )
    ]
    checks += _secret_checks(loaded, unit)
    checks += _state_checks(loaded)
    peers = _peers(loaded)
    results = await asyncio.gather(*(_reach(p, loaded.base_dir) for p in peers))
    answering = {p.seeds for p, failure in zip(peers, results, strict=True) if failure is None and p.seeds}
    for p, failure in zip(peers, results, strict=True):
        where = f"{p.host}:{p.port}" + (" (TLS)" if p.tls is not None else "")
        if failure is None:
            checks.append(Check("OK", say("doctor.peer.reachable", peer=p.name, where=where)))
        else:
            checks.append(
                Check(
                    "WARN" if p.seeds in answering else "FAIL",
                    say("doctor.peer.unreachable", peer=p.name, where=where, why=failure[0]),
                    failure[1],
                )
            )
    api = await _api_check(loaded)
    checks.append(api)
    if api.status == "OK":
        checks += await _camera_checks(loaded)
    checks += await _gb28181_checks(loaded)
    for c in checks:
        print(c.line())
    failed = sum(c.status == "FAIL" for c in checks)
    print("\n" + say("doctor.summary", failed=failed, warnings=sum(c.status == "WARN" for c in checks)))
    return 1 if failed else 0
