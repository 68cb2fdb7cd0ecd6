"""The ONVIF driver against the simulator, through the real onvif-zeep-async client."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from drivers.onvif import EventKind, OnvifSession, redact_url, with_credentials
from edge_core.errors import DriverConnectError, DriverProtocolError
from simulators.onvif_camera import OnvifCameraSim
from tests.integration.cameras._peers import PASSWORD, USER, unclosed_http_reports


def _session(sim: OnvifCameraSim, password: str = PASSWORD, **kw: object) -> OnvifSession:
    return OnvifSession("gate-cam", "127.0.0.1", sim.port, USER, password, **kw)  # type: ignore[arg-type]


async def test_profiles_and_uris_come_through_the_real_client(onvif_sim: OnvifCameraSim) -> None:
    async with _session(onvif_sim) as s:
        assert s.info is not None
        assert (s.info.manufacturer, s.info.model, s.info.serial) == (
            "TownshipSim",
            "SIM-CAM-1",
            "SIM0001",
        )
        assert s.capabilities["Events"]["WSPullPointSupport"] is True
        assert {p.token for p in s.profiles} == {"main", "sub"}
        analysis, evidence = s.choose(None, None)
        assert (analysis.token, analysis.width, analysis.height) == ("sub", 640, 360)
        assert (evidence.token, evidence.width) == ("main", 1920)
        assert analysis.stream_uri == "rtsp://127.0.0.1:8554/sub"
        assert analysis.gov_length == 25
        assert evidence.snapshot_uri is not None and evidence.snapshot_uri.endswith("profile=main")
        snap = await s.snapshot(evidence.token)
        assert snap.data[:2] == b"\xff\xd8"
        assert snap.content_type == "image/jpeg"
        explicit = s.choose("main", "sub")
        assert (explicit[0].token, explicit[1].token) == ("main", "sub")
        with pytest.raises(DriverProtocolError, match="no media profile 'third'"):
            s.choose("third", None)


async def test_wrong_password_is_a_clear_error_naming_the_camera(onvif_sim: OnvifCameraSim) -> None:
    with pytest.raises(DriverProtocolError) as info:
        async with _session(onvif_sim, password="not-the-password"):
            pass
    err = info.value
    assert err.code == "auth"
    assert err.device_id == "gate-cam"
    assert str(err).startswith("gate-cam: ")
    assert "username and password" in str(err)
    assert "not-the-password" not in str(err) and PASSWORD not in str(err)
    assert onvif_sim.auth_failures >= 1


async def test_clock_skew_without_permission_warns_and_still_authenticates(
    onvif_sim: OnvifCameraSim, caplog: pytest.LogCaptureFixture
) -> None:
    onvif_sim.skew_clock(-400)
    with caplog.at_level(logging.WARNING, logger="drivers.onvif"):
        async with _session(onvif_sim) as s:
            assert s.clock_skew_s == pytest.approx(-400, abs=2)
            assert s.info is not None  # signed with the measured offset, accepted
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert re.search(r"camera gate-cam: clock is -40[01] s off ours", warning)
    assert "allow_set_time" in warning
    assert onvif_sim.set_time_calls == 0
    assert onvif_sim.clock_offset_s == pytest.approx(-400, abs=1)


async def test_clock_skew_with_permission_sets_the_camera_clock(onvif_sim: OnvifCameraSim) -> None:
    onvif_sim.skew_clock(3600)
    async with _session(onvif_sim, allow_set_time=True) as s:
        assert s.clock_was_set
        assert abs(s.clock_skew_s) <= 2
    assert onvif_sim.set_time_calls == 1
    assert abs(onvif_sim.clock_offset_s) <= 2


async def test_auth_failure_under_skew_names_the_clock(onvif_sim: OnvifCameraSim) -> None:
    onvif_sim.skew_clock(900)
    with pytest.raises(DriverProtocolError, match=r"camera clock is \+(899|900) s off") as info:
        async with _session(onvif_sim, password="wrong"):
            pass
    assert info.value.code == "auth"


async def test_unreachable_camera_is_a_connect_error() -> None:
    sim = OnvifCameraSim()
    await sim.start()
    port = sim.port
    await sim.stop()
    with pytest.raises(DriverConnectError, match=r"gate-cam: .*cannot reach 127\.0\.0\.1"):
        async with OnvifSession("gate-cam", "127.0.0.1", port, USER, PASSWORD, timeout_s=3):
            pass


async def test_pullpoint_events_renewal_and_fault(onvif_sim: OnvifCameraSim) -> None:
    async with _session(onvif_sim) as s, s.subscription(lease_s=2) as sub:
        initial = await sub.pull(1)
        assert {e.kind for e in initial} == {EventKind.MOTION, EventKind.TAMPER}
        assert all(e.initial and not e.active for e in initial)
        onvif_sim.motion(True)
        onvif_sim.tamper(True)
        got = await sub.pull(1)
        assert [(e.kind, e.active) for e in got] == [
            (EventKind.MOTION, True),
            (EventKind.MOTION, True),
            (EventKind.TAMPER, True),
        ]
        # A 2 s lease is renewed at half of it, so the subscription outlives its first lease.
        for _ in range(4):
            await sub.pull(1)
        assert sub.renewals >= 1
        assert onvif_sim.renewals == sub.renewals
        onvif_sim.kill_subscriptions()
        with pytest.raises(DriverProtocolError, match=r"PullMessages|Renew"):
            await sub.pull(1)


def test_credentials_are_added_for_the_client_and_removed_for_display() -> None:
    url = with_credentials("rtsp://10.0.0.5:554/Streaming/102", "admin", "p@ss:w/rd")
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/Streaming/102"
    assert redact_url(url) == "rtsp://10.0.0.5:554/Streaming/102"
    assert redact_url("http://cam/snap.jpg?user=admin&password=x&ch=1") == "http://cam/snap.jpg?ch=1"


async def test_close_cancelled_midway_still_closes_every_http_session(onvif_sim: OnvifCameraSim) -> None:
    # A stop cancels a lingering camera task again while it cleans up; the second cancellation
    # lands inside close(), at its first await.
    async def connect_then_cancelled_close() -> None:
        session = _session(onvif_sim)
        await session.connect()
        await session.subscribe(10)  # one more service, one more HTTP session
        closing = asyncio.create_task(session.close())
        await asyncio.sleep(0)
        closing.cancel()
        await asyncio.wait([closing])
        assert closing.cancelled()

    assert await unclosed_http_reports(connect_then_cancelled_close) == []
