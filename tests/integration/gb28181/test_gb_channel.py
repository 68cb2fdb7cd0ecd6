"""The GB/T 28181 channel against the in-suite platform, over UDP and TCP on 127.0.0.1.

The platform checks the digest with its own code; SIPp (test_gb_sipp.py) plays the platform for
the same flows where it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from edge_config.gb28181 import Gb28181Settings
from edge_core.errors import DriverAuthError, DriverConnectError, DriverTimeoutError
from gateway.gb28181.channel import Gb28181Channel
from gateway.gb28181.mapping import GbCamera
from gateway.gb28181.sip import SipMessage
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.supervisor import Supervisor
from tests.integration.gb28181.platform import DEVICE_ID, PLATFORM_ID, FakePlatform

PASSWORD = "12345678"
CAMERAS = [GbCamera(f"cam-{i}", f"510421103013200{i:05d}", f"摄像头{i}", "510421103", 102.1, 26.9) for i in range(45)]


def settings(port: int, proto: str, **over: Any) -> Gb28181Settings:
    base: dict[str, Any] = {
        "id": "county",
        "platform_id": PLATFORM_ID,
        "host": "127.0.0.1",
        "port": port,
        "transport": proto,
        "device_id": DEVICE_ID,
        "password": {"file": "pw"},
        "keepalive_s": 5,
        "request_timeout_s": 1.0,
        "charset": "GB2312",
    }
    base.update(over)
    return Gb28181Settings.model_validate(base)


Factory = Callable[..., Gb28181Channel]


@pytest.fixture
def make(outbox: Outbox) -> Factory:
    online = {f"cam-{i}": i % 3 != 0 for i in range(45)}

    def factory(
        port: int, proto: str, password: str = PASSWORD, camera_online: dict[str, bool] = online, **over: Any
    ) -> Gb28181Channel:
        return Gb28181Channel(
            settings(port, proto, **over),
            password=password,
            outbox=outbox,
            metrics=Metrics(),
            cameras=CAMERAS,
            camera_online=camera_online.__getitem__,
            box_name="Xinhe box",
            firmware="1.0",
        )

    return factory


@contextlib.asynccontextmanager
async def running(ch: Gb28181Channel) -> AsyncIterator[asyncio.Task[None]]:
    up = asyncio.Event()
    task = asyncio.create_task(ch.run(up.set))
    try:
        async with asyncio.timeout(5):
            done, _ = await asyncio.wait({task, asyncio.create_task(up.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(params=["udp", "tcp"])
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[FakePlatform]:
    p = FakePlatform(request.param, PASSWORD)
    await p.start()
    yield p
    p.close()


async def test_register_with_digest_then_unregister_on_stop(platform: FakePlatform, make: Factory) -> None:
    ch = make(platform.port, platform.proto)
    async with running(ch):
        assert ch.stats.registered
        assert [r.get("Authorization") is None for r in platform.registers] == [True, False]
        reg = platform.registers[1]
        assert reg.get("X-GB-Ver") == "2.0"
        assert f"sip:{DEVICE_ID}@" in (reg.get("Contact") or "")
    assert platform.accepted == [3600, 0]  # the Expires: 0 on stop was accepted too


async def test_refresh_before_the_granted_expiry(make: Factory) -> None:
    # The platform grants 2 s instead of the 3600 asked: the refresh follows the grant, in the
    # same registration dialog (same Call-ID, higher CSeq).
    p = FakePlatform("udp", PASSWORD, grant_s=2)
    await p.start()
    try:
        async with running(make(p.port, "udp")):
            async with asyncio.timeout(5):
                while len(p.accepted) < 3:
                    await asyncio.sleep(0.05)
        ok = [r for r in p.registers if r.get("Authorization")]
        assert len({r.get("Call-ID") for r in p.registers}) == 1
        assert [r.cseq[0] for r in ok] == sorted(r.cseq[0] for r in ok)
        assert len({r.cseq[0] for r in ok}) == len(ok)
    finally:
        p.close()


async def test_register_without_qop(make: Factory) -> None:
    p = FakePlatform("udp", PASSWORD, qop=False)
    await p.start()
    try:
        async with running(make(p.port, "udp")):
            assert p.accepted == [3600]
    finally:
        p.close()


async def test_wrong_password_is_the_links_last_error(platform: FakePlatform, make: Factory) -> None:
    ch = make(platform.port, platform.proto, password="wrong")
    with pytest.raises(DriverAuthError, match="403"):
        await ch.run(lambda: None)
    sup = Supervisor(ch.name, ch.run, Metrics())
    task = asyncio.create_task(sup.run())
    try:
        async with asyncio.timeout(5):
            while sup.health.last_error is None:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "403" in sup.health.last_error and "password" in sup.health.last_error


async def test_a_dead_platform_is_a_timeout(make: Factory) -> None:
    p = FakePlatform("udp", PASSWORD)
    port = await p.start()
    p.close()
    with pytest.raises(DriverTimeoutError, match="did not answer REGISTER"):
        await make(port, "udp").run(lambda: None)


async def test_clock_skew_is_warned(make: Factory, caplog: pytest.LogCaptureFixture) -> None:
    ahead = (datetime.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.123")
    p = FakePlatform("udp", PASSWORD, date=ahead)
    await p.start()
    try:
        with caplog.at_level(logging.WARNING):
            async with running(ch := make(p.port, "udp")):
                pass
        assert ch.stats.clock_skew_s is not None and 290 < ch.stats.clock_skew_s < 310
        assert re.search(r"clock .* is \+(29\d|30\d)\.\d s from ours", caplog.text)
    finally:
        p.close()


def _xml_of(platform: FakePlatform, cmd: str) -> list[Any]:
    return [m for m in platform.messages if m.cmd == cmd]


async def test_catalog_is_paged_with_sum_and_num(platform: FakePlatform, make: Factory) -> None:
    async with running(make(platform.port, platform.proto, catalog_page=20)):
        resp = await platform.query("Catalog", DEVICE_ID, 4711)
        assert resp.status == 200
        pages = await platform.wait_for("Catalog", 3)
    assert [p.xml.findtext("SumNum") for p in pages] == ["45"] * 3
    assert [p.xml.find("DeviceList").get("Num") for p in pages] == ["20", "20", "5"]  # type: ignore[union-attr]
    assert {p.xml.findtext("SN") for p in pages} == {"4711"}
    items = [i for p in pages for i in p.xml.iter("Item")]
    assert [i.findtext("DeviceID") for i in items] == [c.channel_id for c in CAMERAS]
    assert [i.findtext("Status") for i in items[:4]] == ["OFF", "ON", "ON", "OFF"]  # follows the camera link
    assert items[1].findtext("Name") == "摄像头1"
    for p in pages:
        assert p.msg.get("Content-Type") == "Application/MANSCDP+xml"
        assert int(p.msg.get("Content-Length") or -1) == len(p.msg.body)
        assert p.msg.body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
        p.msg.body.decode("gb2312")


async def test_device_info_and_status(platform: FakePlatform, make: Factory) -> None:
    async with running(make(platform.port, platform.proto, charset="UTF-8")):
        assert (await platform.query("DeviceInfo", DEVICE_ID, 5)).status == 200
        assert (await platform.query("DeviceStatus", CAMERAS[0].channel_id, 6)).status == 200
        assert (await platform.query("DeviceStatus", CAMERAS[1].channel_id, 7)).status == 200
        (info,) = await platform.wait_for("DeviceInfo")
        status = await platform.wait_for("DeviceStatus", 2)
    assert (info.root, info.xml.findtext("SN"), info.xml.findtext("Result")) == ("Response", "5", "OK")
    assert info.xml.findtext("Channel") == "45" and info.xml.findtext("DeviceName") == "Xinhe box"
    by_sn = {s.xml.findtext("SN"): s.xml for s in status}
    assert by_sn["6"].findtext("Online") == "OFFLINE" and by_sn["7"].findtext("Online") == "ONLINE"


async def test_unsupported_and_unknown_get_sip_errors(platform: FakePlatform, make: Factory) -> None:
    async with running(make(platform.port, platform.proto)):
        assert (await platform.query("Catalog", "51042110301329999999", 1)).status == 404
        assert (await platform.query("RecordInfo", DEVICE_ID, 2)).status == 501
        assert (await platform.request("INFO", b"")).status == 501
        assert (await platform.request("SUBSCRIBE", b"")).status == 489
        assert (await platform.request("MESSAGE", b"hello", "text/plain")).status == 415
        reset = "<AlarmCmd>ResetAlarm</AlarmCmd>\r\n"
        assert (
            await platform.query("DeviceControl", CAMERAS[0].channel_id, 3, root="Control", extra=reset)
        ).status == 200
        (ctl,) = await platform.wait_for("DeviceControl")
        assert ctl.xml.findtext("Result") == "OK"


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<Query><CmdType>&c;</CmdType><SN>1</SN><DeviceID>1</DeviceID></Query>"
)


async def test_bad_input_gets_sip_errors_and_the_channel_lives_on(
    platform: FakePlatform, make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(ch := make(platform.port, platform.proto)) as task:
        assert (await platform.request("MESSAGE", BOMB)).status == 400
        assert (await platform.request("MESSAGE", b"<Query><CmdType>Catalog</Query>")).status == 400
        gbk = f"<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>{DEVICE_ID}</DeviceID><X>\xff\xfe</X></Query>"
        assert (await platform.request("MESSAGE", gbk.encode("latin-1"))).status == 415  # no charset reads it
        if platform.proto == "udp":
            # Content-Length larger than the datagram: a 400, not a wait.
            short = platform.build("MESSAGE", b"<Query/>")
            wire = short.encode().replace(b"Content-Length: 8", b"Content-Length: 80")
            platform.send_raw(wire)
            assert (await platform.answer_to(short)).status == 400
            # A header line without a colon: the head names who to answer, so it gets a 400.
            broken = platform.build("MESSAGE", b"")
            platform.send_raw(broken.encode().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards 70\r\n"))
            assert (await platform.answer_to(broken)).status == 400
            # A Content-Length that is no number.
            nan = platform.build("MESSAGE", b"<Query/>")
            platform.send_raw(nan.encode().replace(b"Content-Length: 8", b"Content-Length: eight"))
            assert (await platform.answer_to(nan)).status == 400
            platform.send_raw(b"\x00\x01garbage that is not SIP\r\n\r\n")
            platform.send_raw(b"NOTSIP\r\n\r\n")
        big = platform.build("MESSAGE", b"x" * (10 * 1024 * 1024))
        if platform.proto == "udp":
            # A datagram cannot carry 10 MB: what arrives says so in its Content-Length.
            wire = big.encode()[:60_000]
            platform.send_raw(wire)
        else:
            platform.send_raw(big.encode())
        assert (await platform.answer_to(big)).status == 413
        # Still registered and answering.
        assert (await platform.query("DeviceInfo", DEVICE_ID, 9)).status == 200
        assert not task.done() and ch.stats.registered
    # Each kind of bad input says what was wrong in its own log line.
    said = [
        "XML with a DTD or entity declarations is refused (MANSCDP needs none); answered 400",
        "malformed XML",
        "body is not text in GB2312 (nor UTF-8 or GB18030); answered 415",
        "bytes is over the 262144 byte limit",
    ]
    if platform.proto == "udp":
        said += [
            "Content-Length 80 but only 8 body bytes arrived",
            "malformed header line 'Max-Forwards 70'",
            "Content-Length 'eight' is not a number",
            "not a SIP start line",
        ]
    assert [s for s in said if s not in caplog.text] == []


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (b"Content-Length: 8", b"Content-Length: 80", "wrong Content-Length"),
        (b"Content-Length: 8", b"Content-Length: eight", "unparseable message head"),
        (b"Max-Forwards: 70", b"Max-Forwards 70", "unparseable message head"),
    ],
)
async def test_tcp_bad_framing_gets_a_400_then_closes_and_reregisters(
    make: Factory, old: bytes, new: bytes, why: str
) -> None:
    # On a stream, where the next message starts is lost: the box answers what it can, closes
    # the connection, and the supervisor connects and registers again.
    p = FakePlatform("tcp", PASSWORD)
    await p.start()
    try:
        # No keepalive within the body wait: its answer would fill the missing bytes.
        ch = make(p.port, "tcp", keepalive_s=60)
        up = asyncio.Event()
        task = asyncio.create_task(ch.run(up.set))
        await asyncio.wait_for(up.wait(), 5)
        bad = p.build("MESSAGE", b"<Query/>")
        p.send_raw(bad.encode().replace(old, new))
        assert (await p.answer_to(bad)).status == 400
        with pytest.raises(DriverConnectError, match=f"connection lost: {why}"):
            await asyncio.wait_for(task, 10)
    finally:
        p.close()


async def test_keepalive_misses_mean_register_again(make: Factory) -> None:
    p = FakePlatform("udp", PASSWORD, answer_keepalives=False)
    await p.start()
    try:
        ch = make(p.port, "udp", keepalive_s=5, keepalive_misses=2, request_timeout_s=0.5)
        with pytest.raises(DriverTimeoutError, match="2 keepalives unanswered"):
            await asyncio.wait_for(ch.run(lambda: None), 20)
        assert len(await p.wait_for("Keepalive", 2)) >= 2
        assert p.accepted == [3600]  # no goodbye to a platform that does not answer
        p.answer_keepalives = True
        async with running(ch):
            assert p.accepted == [3600, 3600]
    finally:
        p.close()


def _same(body: bytes, _seq: int) -> bytes:
    return body


def _event(seq: int, device: str, category: str, kind: str = "opened", alarm_type: int | None = 6) -> bytes:
    return json.dumps(
        {
            "id": f"inc-{seq}.1",
            "type": f"township.edge.incident.{kind}",
            "time": "2026-12-06T02:20:30.000Z",
            "data": {
                "category": category,
                "severity": "major",
                "summary": f"{category} #{seq}",
                "started_at": "2026-12-06T02:20:30.000Z",
                "place": {"device": device, "longitude": 102.1, "latitude": 26.9},
                "gbt28181": {"alarm_method": 5, "alarm_type": alarm_type},
            },
        }
    ).encode()


async def test_alarms_from_the_outbox_in_order_after_reregistration(
    platform: FakePlatform, make: Factory, outbox: Outbox
) -> None:
    writer = asyncio.create_task(outbox.run())
    try:
        platform.answer_alarms = False
        bodies = [
            _event(1, "cam-1", "intrusion"),
            _event(2, "cam-1", "intrusion", kind="updated"),  # the same physical event: no second alarm
            _event(3, "not-a-channel", "intrusion"),
            _event(4, "cam-2", "sensor-anomaly", alarm_type=None),  # no GB/T 28181 alarm type
            _event(5, "cam-2", "motion-in-zone", alarm_type=2),
        ]
        for b in bodies:
            outbox.append(source="s", severity=2, build=functools.partial(_same, b))
        await outbox.flush()
        ch = make(platform.port, platform.proto, request_timeout_s=0.5)
        with pytest.raises(DriverTimeoutError, match="not acknowledged"):
            await asyncio.wait_for(ch.run(lambda: None), 10)
        assert outbox.cursor(ch.consumer) == 0
        platform.answer_alarms = True
        async with running(ch):
            await platform.wait_for("Alarm", 3)
            async with asyncio.timeout(5):
                while outbox.cursor(ch.consumer) < 5:
                    await asyncio.sleep(0.02)
        alarms = [m.xml for m in platform.messages if m.cmd == "Alarm"]
        firsts = [a for a in alarms if a.findtext("Info/AlarmType") == "6"]
        assert len(firsts) >= 1  # sent while the platform stayed silent
        last_two = alarms[-2:]
        assert [a.findtext("DeviceID") for a in last_two] == [CAMERAS[1].channel_id, CAMERAS[2].channel_id]
        assert [a.findtext("Info/AlarmType") for a in last_two] == ["6", "2"]
        a = last_two[0]
        assert (a.findtext("AlarmMethod"), a.findtext("AlarmPriority")) == ("5", "2")
        assert a.findtext("AlarmTime") == datetime.fromisoformat("2026-12-06T02:20:30+00:00").astimezone().strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
        assert a.findtext("Longitude") == "102.100000" and a.findtext("Latitude") == "26.900000"
        assert ch.stats.alarms_sent == 2
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


def _subscribe(
    platform: FakePlatform, event: str, expires: int, sn: int, *, dialog: SipMessage | None = None
) -> SipMessage:
    body = (
        f'<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n<CmdType>{event.split(";")[0]}</CmdType>\r\n'
        f"<SN>{sn}</SN>\r\n<DeviceID>{DEVICE_ID}</DeviceID>\r\n</Query>\r\n"
    ).encode("gb2312")
    msg = platform.build("SUBSCRIBE", body)
    msg.headers += [("Event", event), ("Expires", str(expires)), ("Contact", f"<sip:{PLATFORM_ID}@127.0.0.1>")]
    if dialog is not None:  # a refresh or the end of that subscription: its dialog
        msg.set("Call-ID", dialog.get("Call-ID") or "")
        msg.set("From", dialog.get("From") or "")
    platform.send_raw(msg.encode())
    return msg


async def _notifies(platform: FakePlatform, count: int) -> list[tuple[SipMessage, ET.Element | None]]:
    async with asyncio.timeout(10):
        while len(got := [m for m in platform.others if m.method == "NOTIFY"]) < count:
            await asyncio.sleep(0.02)
    return [(m, ET.fromstring(m.body.decode("gb2312").split("?>", 1)[1]) if m.body else None) for m in got]


async def test_catalog_and_alarm_subscriptions_are_honoured(
    platform: FakePlatform, make: Factory, outbox: Outbox
) -> None:
    online = {c.device: True for c in CAMERAS}
    writer = asyncio.create_task(outbox.run())
    try:
        async with running(make(platform.port, platform.proto, camera_online=online, catalog_page=20)):
            sub = _subscribe(platform, "Catalog;id=7", 600, 31)
            ok = await platform.answer_to(sub)
            assert (ok.status, ok.get("Expires")) == (200, "600")
            assert b"<CmdType>Catalog</CmdType>" in ok.body and b"<Result>OK</Result>" in ok.body
            # At once: the whole catalog, as NOTIFYs in the subscription's dialog.
            first = await _notifies(platform, 3)
            for msg, xml in first:
                assert msg.get("Call-ID") == sub.get("Call-ID") and msg.get("Event") == "Catalog"
                assert (msg.get("Subscription-State") or "").startswith("active;expires=")
                assert xml is not None and (xml.tag, xml.findtext("SumNum")) == ("Notify", "45")
            items = [i for _m, xml in first for i in xml.iter("Item")]  # type: ignore[union-attr]
            assert [i.findtext("DeviceID") for i in items] == [c.channel_id for c in CAMERAS]
            assert {i.findtext("Event") for i in items} == {"ADD"}
            # A camera stops streaming: its channel goes OFF on the platform.
            online["cam-4"] = False
            (_msg, change) = (await _notifies(platform, 4))[-1]
            (item,) = change.iter("Item")  # type: ignore[union-attr]
            assert [item.findtext(t) for t in ("DeviceID", "Status", "Event")] == [CAMERAS[4].channel_id, "OFF", "OFF"]

            # An alarm subscription: alarms now go as NOTIFY in its dialog, acknowledged as before.
            asub = _subscribe(platform, "Alarm", 600, 32)
            assert (await platform.answer_to(asub)).status == 200
            outbox.append(source="s", severity=2, build=functools.partial(_same, _event(1, "cam-3", "intrusion")))
            await outbox.flush()
            (msg, alarm) = (await _notifies(platform, 5))[-1]
            assert msg.get("Call-ID") == asub.get("Call-ID") and msg.get("Event") == "Alarm"
            assert alarm is not None and alarm.findtext("CmdType") == "Alarm"
            assert alarm.findtext("DeviceID") == CAMERAS[3].channel_id
            async with asyncio.timeout(5):
                while outbox.cursor("gb28181:county") < 1:
                    await asyncio.sleep(0.02)
            assert not [m for m in platform.messages if m.cmd == "Alarm"]

            # The platform ends the catalog subscription: 200, then a last NOTIFY saying so.
            end = _subscribe(platform, "Catalog", 0, 33, dialog=sub)
            ended = await platform.answer_to(end)
            assert (ended.status, ended.get("Expires")) == (200, "0")
            (last, _body) = (await _notifies(platform, 6))[-1]
            assert last.get("Call-ID") == sub.get("Call-ID")
            assert (last.get("Subscription-State") or "").startswith("terminated")
            # An event package we do not offer.
            other = _subscribe(platform, "presence", 600, 34)
            refused = await platform.answer_to(other)
            assert refused.status == 489 and "Catalog" in (refused.get("Allow-Events") or "")
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
