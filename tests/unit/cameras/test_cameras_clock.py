"""The camera's clock from GetSystemDateAndTime, whichever fields its firmware fills in."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace as NS

import pytest

from drivers.onvif import MediaProfile, camera_clock


def _clock(y: int, mo: int, d: int, h: int, mi: int, s: int) -> NS:
    return NS(Date=NS(Year=y, Month=mo, Day=d), Time=NS(Hour=h, Minute=mi, Second=s))


def test_utc_is_used_when_given() -> None:
    answer = NS(UTCDateTime=_clock(2026, 12, 6, 2, 30, 0), LocalDateTime=_clock(2026, 12, 6, 10, 30, 0))
    assert camera_clock(answer) == (dt.datetime(2026, 12, 6, 2, 30, tzinfo=dt.UTC), "utc")


@pytest.mark.parametrize(
    ("tz", "local", "utc"),
    [
        ("CST-8", (2026, 12, 6, 10, 30, 0), (2026, 12, 6, 2, 30)),
        ("CST-8:00:00", (2026, 12, 6, 10, 30, 0), (2026, 12, 6, 2, 30)),
        ("<+0530>-5:30", (2026, 12, 6, 8, 30, 0), (2026, 12, 6, 3, 0)),
        ("EST5EDT,M3.2.0,M11.1.0", (2026, 12, 5, 21, 30, 0), (2026, 12, 6, 2, 30)),
    ],
)
def test_local_time_is_read_in_the_cameras_own_posix_zone(
    tz: str, local: tuple[int, int, int, int, int, int], utc: tuple[int, int, int, int, int]
) -> None:
    answer = NS(UTCDateTime=None, LocalDateTime=_clock(*local), TimeZone=NS(TZ=tz))
    assert camera_clock(answer) == (dt.datetime(*utc, tzinfo=dt.UTC), "local")


def test_local_time_without_a_usable_zone_is_taken_as_ours() -> None:
    answer = NS(UTCDateTime=None, LocalDateTime=_clock(2026, 12, 6, 10, 30, 0), TimeZone=NS(TZ="GMT+?"))
    zone = dt.timezone(dt.timedelta(hours=8))
    assert camera_clock(answer, zone) == (dt.datetime(2026, 12, 6, 2, 30, tzinfo=dt.UTC), "local-assumed")


def test_an_answer_without_any_time_says_so() -> None:
    with pytest.raises(ValueError, match="neither UTCDateTime nor LocalDateTime"):
        camera_clock(NS(UTCDateTime=None, LocalDateTime=None))


def test_stream_uri_expiry() -> None:
    p = MediaProfile("sub", "sub", "H264", 640, 360, None, None, "rtsp://x/sub", None)
    assert not p.stream_uri_expired(now=1e9)  # no Timeout: valid for ever
    timed = MediaProfile("sub", "sub", "H264", 640, 360, None, None, "rtsp://x/sub", None, 30.0, False, 100.0)
    assert not timed.stream_uri_expired(now=129.0) and timed.stream_uri_expired(now=130.0)
    once = MediaProfile("sub", "sub", "H264", 640, 360, None, None, "rtsp://x/sub", None, None, True, 100.0)
    assert once.stream_uri_expired(now=100.0)
