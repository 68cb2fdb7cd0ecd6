"""`edge-gateway doctor`: what a field technician runs when something is wrong.

Each check prints one line, OK / WARN / FAIL, and for anything not OK what to do about it. It
only reads: it opens TCP connections to the configured peers (no protocol traffic, no logins),
looks at the state directory and at the installed unit's credentials, and asks a running gateway
(its own API) how each camera is doing, such as a camera that cannot gate on its own motion; it
changes nothing.
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


async def _reach(peer: _Peer, base_dir: Path) -> tuple[str, str] | None:
    """None when a connection (with its TLS handshake, if any) opens in time, else (why, hint)."""
    ctx: ssl.SSLContext | None = None
    if peer.tls is not None:
        try:
            ctx = client_context(peer.tls, base_dir, link=peer.name)
        except DriverProtocolError as exc:
            return str(exc).removeprefix(f"{peer.name}: "), "fix the path in the site file, or put the file there"
    try:
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            _reader, writer = await asyncio.open_connection(peer.host, peer.port, ssl=ctx)
    except TimeoutError:
        return f"no answer within {_CONNECT_TIMEOUT_S:.0f} s", peer.hint
    except ssl.SSLError as exc:
        return tls_failure(exc), "the CA that signed the server's certificate belongs in tls.ca_file"
    except ConnectionRefusedError:
        # asyncio's own wording ("Connect call failed ('10.0.0.5', 1883)") repeats the address
        # and hides the one fact that matters: the host answered, the port did not.
        return "connection refused: the host is up but nothing listens on that port", peer.hint
    except OSError as exc:
        return exc.strerror or type(exc).__name__, peer.hint
    writer.close()
    return None


def _peers(loaded: LoadedConfig) -> list[_Peer]:
    cfg = loaded.config
    peers = [
        _Peer(f"MQTT broker {b.id}", b.host, b.port, "is the broker running, and the address and port right?", b.tls)
        for b in cfg.brokers
    ]
    for d in cfg.devices:
        if isinstance(d, OpcUaDevice):
            u = urlsplit(d.endpoint)
            peers.append(
                _Peer(f"OPC-UA server of {d.id}", u.hostname or "", u.port or 4840, "is the PLC on and cabled?")
            )
        elif isinstance(d, CameraDevice):
            peers.append(_Peer(f"camera {d.id} (ONVIF)", d.host, d.port, "is the camera powered and on this LAN?"))
    wh = cfg.upstream.webhook
    if wh is not None:
        u = urlsplit(str(wh.url))
        https = u.scheme == "https"
        peers.append(
            _Peer(
                "platform webhook",
                u.hostname or "",
                u.port or (443 if https else 80),
                "no uplink: events wait in the outbox; check the route to the county network",
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
                    f"NATS server {u.hostname}:{u.port or 4222}",
                    u.hostname or "",
                    u.port or 4222,
                    "one seed down is fine while another answers; all down: events wait in the outbox, "
                    "check the route to the county network",
                    tls,
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
        return Check("OK", "outbox: no events in the last day, so the budget holds any outage")
    rate = f"{per_hour / 1024:,.1f} KiB/h"
    text = f"outbox: at the last day's rate ({rate}) the budget holds {hours:,.1f} h of uplink outage"
    if hours < 24:
        return Check("WARN", text, "raise [outbox] budget_mb, or a day without uplink drops the least severe events")
    return Check("OK", text)


def _state_checks(loaded: LoadedConfig) -> list[Check]:
    cfg = loaded.config
    state = default_state_dir(cfg)
    out: list[Check] = []
    if not state.exists():
        return [
            Check(
                "WARN",
                f"state directory {state} does not exist yet",
                "it is created on first start (systemd: StateDirectory=edge-gateway)",
            )
        ]
    try:
        with tempfile.NamedTemporaryFile(dir=state):
            pass
        out.append(Check("OK", f"state directory {state} is writable"))
    except OSError as exc:
        out.append(
            Check(
                "FAIL",
                f"state directory {state} is not writable: {exc.strerror}",
                "fix its owner or permissions (systemd: StateDirectory= sets them)",
            )
        )
    free_mb = shutil.disk_usage(state).free / 2**20
    need = cfg.outbox.budget_mb
    if free_mb < need:
        out.append(
            Check(
                "WARN",
                f"{free_mb:.0f} MiB free on the state disk, outbox budget is {need:.0f} MiB",
                "lower [outbox] budget_mb or free space, or a long outage will fill the disk",
            )
        )
    else:
        out.append(Check("OK", f"{free_mb:.0f} MiB free on the state disk (outbox budget {need:.0f} MiB)"))
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
                    f"outbox {db}: integrity {ok}, {n} events kept",
                    "" if ok == "ok" else "stop the service and move the file aside; report it",
                )
            )
            if held is not None:
                out.append(held)
        except sqlite3.Error as exc:
            out.append(Check("FAIL", f"outbox {db} cannot be read: {exc}", "stop the service and move the file aside"))
    cache = Path(os.environ.get("NUMBA_CACHE_DIR", state / "numba-cache"))
    out.append(
        Check(
            "OK" if os.access(cache if cache.exists() else cache.parent, os.W_OK) else "WARN",
            f"numba cache {cache}",
            ""
            if os.access(cache if cache.exists() else cache.parent, os.W_OK)
            else "not writable: kernels will be compiled at every start",
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


_BLANK_HINT = "write the secret into it (a new API token: head -c 24 /dev/urandom | base64)"


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
        if name not in loads:
            out.append(
                Check(
                    "FAIL",
                    f"credential {name!r}: the site file names it, but {unit} does not load it",
                    f"add LoadCredential={name}:/etc/edge-gateway/credentials/{name} under [Service] "
                    "(systemctl edit edge-gateway), then systemctl restart edge-gateway",
                )
            )
        elif source is None:
            out.append(Check("OK", f"credential {name!r}: from systemd's credential store"))
        elif (found := _is_file(source)) is None:
            out.append(Check("WARN", f"credential {name!r}: cannot look at {source}", "run doctor as root"))
        elif not found and name in defaults and name not in names:
            out.append(Check("OK", f"credential {name!r}: not used by this site ({source} may stay absent)"))
        elif not found and name in defaults:
            out.append(
                Check(
                    "FAIL",
                    f"credential {name!r}: {source} does not exist: the service gets the unit's empty default, "
                    "and an empty secret is refused",
                    f"create it, readable by root only (chmod 600): {_BLANK_HINT}",
                )
            )
        elif not found:
            used = "the site file names it" if name in names else "the site file does not use it, an empty file will do"
            out.append(
                Check(
                    "FAIL",
                    f"credential {name!r}: {source} does not exist, and systemd will not start the service without it",
                    f"create it, readable by root only (chmod 600); {used}",
                )
            )
        elif name in names and _is_blank(source):
            out.append(Check("FAIL", f"credential {name!r}: {source} is empty", _BLANK_HINT))
        else:
            out.append(Check("OK", f"credential {name!r}: {source}"))
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
        return [Check("WARN", f"cameras: not asked, the API token cannot be read here ({exc})")]
    url = f"{_api_base(loaded)}/api/v1/cameras"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)) as s,
            s.get(url, headers={"Authorization": f"Bearer {token}"}) as r,
        ):
            r.raise_for_status()
            cameras = (await r.json()).get("cameras", [])
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return [Check("WARN", f"cameras: the gateway did not list them at {url} ({type(exc).__name__})")]
    out: list[Check] = []
    for cam in cameras:
        name = f"camera {cam.get('id')}"
        if cam.get("gating_fallback"):
            out.append(
                Check(
                    "WARN",
                    f"{name} {cam['gating_fallback']}",
                    f'set gating = "always" for {cam.get("id")} in the site file (it has no motion events to '
                    "gate on), or enable ONVIF events on the camera",
                )
            )
        elif cam.get("events_unavailable") and cam["events_unavailable"] != "events = false in the site file":
            out.append(
                Check(
                    "WARN",
                    f"{name}: its own ONVIF events are not received: {cam['events_unavailable']}",
                    "tamper and motion are still detected on the box; enable ONVIF events on the camera for its own",
                )
            )
        else:
            out.append(
                Check(
                    "OK",
                    f"{name}: {cam.get('state')}, gating {cam.get('gating_in_force')}, "
                    f"{cam.get('analysed')} frames analysed",
                )
            )
    return out


async def _api_check(loaded: LoadedConfig) -> Check:
    url = f"{_api_base(loaded)}/healthz"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)) as s, s.get(url) as r:
            body = await r.json()
        return Check("OK", f"a gateway answers at {url}: {body.get('status')}")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return Check(
            "WARN", f"no gateway answers at {url}", "systemctl status edge-gateway; journalctl -u edge-gateway -n 50"
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
            checks.append(Check("OK", f"GB/T 28181 platform {gb.id} answers at {where}: {answer}"))
        except (OSError, TimeoutError) as exc:
            why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            checks.append(
                Check(
                    "FAIL",
                    f"GB/T 28181 platform {gb.id} not reachable at {where}: {why}",
                    "alarms wait in the outbox; check the route to the county video network, host, port and transport",
                )
            )
        link = links.get(f"upstream:gb28181:{gb.id}")
        if link is None:
            continue
        if link.get("state") == "connected":
            checks.append(Check("OK", f"GB/T 28181 {gb.id}: the gateway is registered as {gb.device_id}"))
        else:
            why = f": {link['last_error']}" if link.get("last_error") else ""
            checks.append(
                Check(
                    "FAIL",
                    f"GB/T 28181 {gb.id}: the gateway is not registered ({link.get('state')}){why}",
                    "the status page shows the link's last error: a 403 means a wrong password or a device_id "
                    "the platform does not know",
                )
            )
    return checks


def _load_site(path: Path) -> LoadedConfig | None:
    """The site file, or None after printing why it cannot be used."""
    if not path.exists():
        hint = "pass --config FILE (default /etc/edge-gateway/site.toml); start from edge_config/examples/"
        print(Check("FAIL", f"site file {path} does not exist", hint).line())
        return None
    try:
        return load(path)
    except ConfigError as exc:
        print(Check("FAIL", f"site file {path} is invalid", "fix these, then run doctor again").line())
        for line in exc.problems:
            print(f"      {line}")
        return None


def _secret_checks(loaded: LoadedConfig, unit: Path) -> list[Check]:
    problems, notes = check_secrets(loaded)
    checks = [
        Check(
            "FAIL",
            p,
            _BLANK_HINT
            if p.endswith(" is empty")
            else "fix the path in the site file, or put the file there"
            if " not found" in p
            else "create the file, readable by the service only (chmod 600)",
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
            f"site file {path}: box {loaded.config.site.box_id}, "
            f"{len(loaded.config.devices)} devices, {len(loaded.config.rules)} rules",
        )
    ]
    checks += _secret_checks(loaded, unit)
    checks += _state_checks(loaded)
    peers = _peers(loaded)
    results = await asyncio.gather(*(_reach(p, loaded.base_dir) for p in peers))
    for p, failure in zip(peers, results, strict=True):
        where = f"{p.host}:{p.port}" + (" (TLS)" if p.tls is not None else "")
        if failure is None:
            checks.append(Check("OK", f"{p.name} reachable at {where}"))
        else:
            checks.append(Check("FAIL", f"{p.name} not reachable at {where}: {failure[0]}", failure[1]))
    api = await _api_check(loaded)
    checks.append(api)
    if api.status == "OK":
        checks += await _camera_checks(loaded)
    checks += await _gb28181_checks(loaded)
    for c in checks:
        print(c.line())
    failed = sum(c.status == "FAIL" for c in checks)
    print(f"\n{failed} problem(s), {sum(c.status == 'WARN' for c in checks)} warning(s)")
    return 1 if failed else 0
