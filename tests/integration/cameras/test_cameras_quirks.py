"""Cameras as they really are: the driver and the camera against the simulator's quirk switches
(each one a camera the third-party peers showed), and the simulator behaving like a camera."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from drivers.camera import Camera
from drivers.onvif import OnvifSession
from drivers.rtsp import DecodedFrame
from edge_config.camera import CameraDevice
from edge_core.errors import DriverAuthError, DriverProtocolError
from edge_core.signals import Signal
from simulators.onvif_camera import NS, OnvifCameraSim
from tests.integration.cameras._peers import PASSWORD, USER, camera_config, free_port, running_camera
from tests.integration.gateway.conftest import until


def _config(sim: OnvifCameraSim, **overrides: Any) -> CameraDevice:
    stream = {"offline_after_s": 30.0, "stall_timeout_s": 1.0, "reconnect_max_s": 0.2, "open_timeout_s": 1.0}
    return camera_config(sim, stream, **overrides)


def _snapshot_mode(sim: OnvifCameraSim, **overrides: Any) -> CameraDevice:
    return _config(sim, stream={"mode": "snapshot", "snapshot_interval_s": 0.2}, **overrides)


def _session(sim: OnvifCameraSim, password: str = PASSWORD) -> OnvifSession:
    return OnvifSession("gate-cam", "127.0.0.1", sim.port, USER, password, timeout_s=5)


# --- 1, 3: a camera without Events ---------------------------------------------------------


async def test_camera_motion_gating_without_events_falls_back_to_always_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames: list[DecodedFrame] = []
    async with OnvifCameraSim(username=USER, password=PASSWORD, events=False) as sim:
        camera = Camera(_snapshot_mode(sim, gating="camera_motion"), password=PASSWORD, frame_sink=frames.append)
        with caplog.at_level(logging.INFO, logger="drivers.camera"):
            async with running_camera(camera, []):
                await until(lambda: len(frames) >= 3, 10, "frames analysed although the camera cannot gate")
        status = camera.status()
    assert status["gating"] == "camera_motion"
    assert status["gating_in_force"] == "always"
    assert "no ONVIF Events service" in status["gating_fallback"]
    assert "no ONVIF Events service" in status["events_unavailable"]
    assert status["analysed"] >= 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    gating = [w for w in warnings if 'gating = "camera_motion"' in w]
    assert len(gating) == 1 and "camera gate-cam" in gating[0] and 'gating = "always"' in gating[0]
    assert not [w for w in warnings if "subscribe" in w or "subscription" in w]
    assert "CreatePullPointSubscription" not in sim.calls  # capabilities decided it: never asked


async def test_a_camera_refusing_pullpoint_is_asked_once_not_every_30_s(caplog: pytest.LogCaptureFixture) -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD) as sim:

        def refuse(_: Any) -> str:
            from simulators.onvif_camera import _Fault

            raise _Fault("ter:ActionNotSupported", "PullPoint is not supported", code="s:Receiver")

        sim._op_CreatePullPointSubscription = refuse  # type: ignore[method-assign,assignment]
        camera = Camera(_snapshot_mode(sim), password=PASSWORD, frame_sink=lambda _f: None)
        with caplog.at_level(logging.WARNING, logger="drivers.camera"):
            async with running_camera(camera, []):
                await until(lambda: camera.events_unavailable is not None, 10, "events given up")
                await asyncio.sleep(1.5)
    assert sim.calls["CreatePullPointSubscription"] == 1
    assert "refuses PullPoint" in str(camera.status()["events_unavailable"])
    assert len([r for r in caplog.records if "events" in r.getMessage()]) == 1


# --- 2: analysed counts what analysis got -------------------------------------------------


async def test_analysed_counts_frames_analysed_not_frames_received() -> None:
    frames: list[DecodedFrame] = []
    async with OnvifCameraSim(username=USER, password=PASSWORD) as sim:
        camera = Camera(_snapshot_mode(sim, gating="camera_motion"), password=PASSWORD, frame_sink=frames.append)
        async with running_camera(camera, []):
            await until(lambda: camera.status()["frames"] >= 3, 10, "snapshots")
            assert camera.status()["analysed"] == 0 == len(frames)  # the camera saw no motion
            assert camera.status()["gating_fallback"] is None
            sim.motion(True)
            await until(lambda: len(frames) >= 2, 10, "frames analysed while the camera reports motion")
            assert camera.status()["analysed"] == len(frames)


# --- 4: an empty SOAP body ----------------------------------------------------------------


async def test_an_empty_soap_body_is_a_protocol_error_naming_camera_and_cause() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD, empty_body_ops=frozenset({"GetProfiles"})) as sim:
        with pytest.raises(DriverProtocolError) as info:
            async with _session(sim):
                pass
    text = str(info.value)
    assert info.value.code == "empty-body"
    assert text.startswith("gate-cam: GetProfiles:") and "empty SOAP body" in text
    assert "IndexError" not in text


# --- 5: snapshots in PNG, with Basic auth; a bare SOAP 401 ---------------------------------


async def test_png_snapshot_keeps_its_type_and_the_live_view_is_jpeg() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD, snapshot_format="png") as sim:
        async with _session(sim) as s:
            snap = await s.snapshot("main")
        assert snap.content_type == "image/png" and snap.data[:4] == b"\x89PNG"
        camera = Camera(_snapshot_mode(sim), password=PASSWORD, frame_sink=lambda _f: None)
        async with running_camera(camera, []):
            camera._latest = None  # no frame yet: the live view asks the camera
            jpeg = await camera.live_jpeg()
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"


async def test_snapshot_url_wanting_basic_auth_feeds_a_snapshot_mode_camera() -> None:
    frames: list[DecodedFrame] = []
    async with OnvifCameraSim(username=USER, password=PASSWORD, snapshot_auth="basic") as sim:
        camera = Camera(_snapshot_mode(sim), password=PASSWORD, frame_sink=frames.append)
        async with running_camera(camera, []) as task:
            await until(lambda: len(frames) >= 3, 10, "snapshots over Basic auth")
            assert not task.done()
        async with _session(sim) as s:
            sim.password = "changed-on-the-camera"
            with pytest.raises(DriverAuthError, match=r"gate-cam: snapshot at .*HTTP 401 \(Basic tried\)"):
                await s.snapshot("sub")


async def test_soap_401_with_an_empty_body_is_an_auth_error_naming_the_camera_and_the_fix() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD, digest_only=True) as sim:
        with pytest.raises(DriverAuthError) as info:
            async with _session(sim, password="not-it"):
                pass
    text = str(info.value)
    assert text.startswith("gate-cam: the camera at 127.0.0.1:")
    assert "HTTP 401" in text and "username and password" in text
    assert "not-it" not in text and PASSWORD not in text


# --- 6: stream URIs that expire -----------------------------------------------------------


async def test_expiring_stream_uri_is_asked_for_again_before_the_stream_is_reopened() -> None:
    dead = f"rtsp://127.0.0.1:{free_port()}/sub"  # nothing listens: every open fails, the ingest reconnects
    async with OnvifCameraSim(
        username=USER, password=PASSWORD, rtsp_main=dead, rtsp_sub=dead, stream_uri_timeout_s=0.5
    ) as sim:
        camera = Camera(_config(sim, events=False), password=PASSWORD)
        async with running_camera(camera, []):
            assert camera.analysis_profile is not None
            assert camera.analysis_profile.stream_uri_valid_s == 0.5
            await until(lambda: camera.stats.stream_uri_refreshes >= 2, 15, "stream URI refreshed")
            assert camera.ingest is not None
            first = camera.ingest.display_url
            await until(lambda: camera.ingest is not None and camera.ingest.display_url != first, 15, "a new URI")
    assert sim.calls["GetStreamUri"] >= 2 + 2  # two profiles at connect, then again per reopen
    assert "session=" in camera.ingest.display_url and PASSWORD not in camera.ingest.display_url


async def test_stream_uri_without_timeout_is_not_asked_for_again() -> None:
    dead = f"rtsp://127.0.0.1:{free_port()}/sub"
    async with OnvifCameraSim(username=USER, password=PASSWORD, rtsp_main=dead, rtsp_sub=dead) as sim:
        camera = Camera(_config(sim, events=False), password=PASSWORD)
        async with running_camera(camera, []):
            await until(lambda: camera.ingest is not None and camera.ingest.stats.failures >= 2, 15, "reopens")
    assert sim.calls["GetStreamUri"] == 2 and camera.stats.stream_uri_refreshes == 0


# --- 7: HTTP Digest on SOAP ---------------------------------------------------------------


async def test_a_digest_only_camera_is_used_with_http_digest() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD, digest_only=True) as sim:
        async with _session(sim) as s:
            assert s.http_digest
            assert {p.token for p in s.profiles} == {"main", "sub"}
            async with s.subscription(lease_s=10) as sub:
                assert {e.kind.value for e in await sub.pull(1)} == {"motion", "tamper"}
        assert sim.auth_failures == 0


async def test_a_camera_taking_username_tokens_never_sees_digest() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD) as sim, _session(sim) as s:
        assert not s.http_digest
        assert s.info is not None


# --- 8: no UTCDateTime --------------------------------------------------------------------


@pytest.mark.parametrize("skew", [0, -400])
async def test_a_camera_sending_only_local_time_connects_and_its_skew_is_measured(skew: int) -> None:
    sim = OnvifCameraSim(username=USER, password=PASSWORD, utc_time=False, clock_offset_s=skew)
    async with sim, _session(sim) as s:
        assert s.clock_source == "local"
        assert s.clock_skew_s == pytest.approx(skew, abs=2)
        assert s.info is not None  # signed with the camera's (local-time derived) clock: accepted
        assert await s.camera_time_skew() == pytest.approx(skew, abs=2)


# --- 9: the simulator behaves like a camera -----------------------------------------------


async def test_a_tamper_still_in_force_stays_open_across_a_resubscription() -> None:
    signals: list[Signal] = []
    async with OnvifCameraSim(username=USER, password=PASSWORD) as sim:
        camera = Camera(_snapshot_mode(sim), password=PASSWORD, frame_sink=lambda _f: None, pull_timeout_s=0.5)
        async with running_camera(camera, signals):
            await until(lambda: camera.stats.subscriptions >= 1, 10, "subscribed")
            await asyncio.sleep(0.3)
            sim.tamper(True)
            await until(lambda: any(s.rule == "camera-tamper" for s in signals), 10, "tamper raised")
            sim.kill_subscriptions()
            await until(lambda: camera.stats.subscriptions >= 2, 10, "resubscribed")
            await asyncio.sleep(1.0)  # the new subscription's initial state has arrived
            tamper = [s for s in signals if s.rule == "camera-tamper"]
            assert [s.active for s in tamper] == [True]  # reported as still in force: not closed
            sim.tamper(False)
            await until(lambda: len([s for s in signals if s.rule == "camera-tamper"]) == 2, 10, "tamper ended")
    assert [s.active for s in signals if s.rule == "camera-tamper"] == [True, False]


async def test_sync_point_reports_the_current_state() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD) as sim, _session(sim) as s:
        sim.tamper(True)
        async with s.subscription(lease_s=10) as sub:
            initial = await sub.pull(1)
            assert {(e.kind.value, e.active) for e in initial if e.initial} == {("motion", False), ("tamper", True)}
            await sub.sync_point()
            again = await sub.pull(1)
            assert ("tamper", True) in {(e.kind.value, e.active) for e in again}


def _envelope(body: str, header: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:tds="{NS["tds"]}" xmlns:trt="{NS["trt"]}" '
        f'xmlns:wsse="{NS["wsse"]}" xmlns:wsu="{NS["wsu"]}"><s:Header>{header}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _token(created: str | None, nonce: str = "MTIzNDU2Nzg5MDEyMzQ1Ng==") -> str:
    import base64
    import hashlib

    created_el = f"<wsu:Created>{created}</wsu:Created>" if created else ""
    digest = base64.b64encode(
        hashlib.sha1(base64.b64decode(nonce) + (created or "").encode() + PASSWORD.encode()).digest()
    ).decode()
    return (
        f"<wsse:Security><wsse:UsernameToken><wsse:Username>{USER}</wsse:Username>"
        '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0'
        f'#PasswordDigest">{digest}</wsse:Password><wsse:Nonce>{nonce}</wsse:Nonce>{created_el}'
        "</wsse:UsernameToken></wsse:Security>"
    )


async def test_the_simulator_answers_like_a_camera() -> None:
    async with OnvifCameraSim(username=USER, password=PASSWORD) as sim, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{sim.port}/onvif"

        async def post(path: str, body: str, header: str = "") -> tuple[int, str]:
            async with http.post(f"{base}/{path}", data=_envelope(body, header)) as r:
                return r.status, await r.text()

        # Mandatory calls answer.
        created = sim.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        status, text = await post("device_service", "<tds:GetScopes/>", _token(created, "WldaWldaWldaWldaWldaWg=="))
        assert status == 200 and "onvif://www.onvif.org/hardware/SIM-CAM-1" in text
        status, text = await post("media_service", "<trt:GetVideoSources/>", _token(created))
        assert status == 200 and 'VideoSources token="vs0"' in text
        # A token is good once.
        status, text = await post("media_service", "<trt:GetVideoSources/>", _token(created))
        assert status == 400 and "NotAuthorized" in text
        # A token without Created cannot be checked for freshness: refused.
        status, text = await post("media_service", "<trt:GetVideoSources/>", _token(None, "QUFBQUFBQUFBQUFBQUFBQQ=="))
        assert status == 400 and "NotAuthorized" in text
        # An operation at another service's address is not there; Receiver faults are HTTP 500.
        status, text = await post("media_service", "<tds:GetScopes/>")
        assert status == 500 and "ActionNotSupported" in text
        status, text = await post("device_service", "<tds:NoSuchCall/>")
        assert status == 500 and "s:Receiver" in text


def test_probe_matches_carry_an_app_sequence() -> None:
    from lxml import etree

    sim = OnvifCameraSim()
    root = etree.fromstring(sim.probe_match("urn:uuid:1"))
    seq = root.find(".//{http://schemas.xmlsoap.org/ws/2005/04/discovery}AppSequence")
    assert seq is not None and int(seq.get("InstanceId")) > 0 and seq.get("MessageNumber") == "1"
    root = etree.fromstring(sim.probe_match("urn:uuid:2"))
    seq = root.find(".//{http://schemas.xmlsoap.org/ws/2005/04/discovery}AppSequence")
    assert seq is not None and seq.get("MessageNumber") == "2"
