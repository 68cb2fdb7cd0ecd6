"""MQTT payloads to readings, topic filters, and MqttDriver.handle routing (no broker needed)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from drivers.base import Quality, Reading
from drivers.mqtt import MqttDriver, PayloadError, parse_payload, topic_matches
from edge_config.mqtt import MqttBroker, MqttDevice, MqttPoint

NOW = 1_800_000_000.0


def point(**kw: Any) -> MqttPoint:
    return MqttPoint(name=kw.pop("name", "level"), topic=kw.pop("topic", "v/pump-1/level"), **kw)


# -- topic filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic", "match"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/b/c", "a/b", False),
        ("a/b", "a/b/c", False),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/y/c", False),
        ("a/+", "a/", True),  # '+' matches an empty level
        ("+/+", "a/b", True),
        ("+", "a/b", False),
        ("a/#", "a", True),  # '#' includes the parent level
        ("a/#", "a/b/c/d", True),
        ("a/#", "b/c", False),
        ("#", "anything/at/all", True),
        ("a/+/#", "a/b", True),
        ("A/b", "a/b", False),  # case sensitive
    ],
)
def test_topic_matches(pattern: str, topic: str, match: bool) -> None:
    assert topic_matches(pattern, topic) is match


# -- parse_payload -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "value"),
    [(b"12.5", 12.5), (b" -3 \n", -3.0), (b"1e3", 1000.0), (b"0", 0.0)],
)
def test_plain_numbers(payload: bytes, value: float) -> None:
    assert parse_payload(payload, point(unit="m"), NOW) == (value, NOW, "m")


def test_scale_and_offset() -> None:
    v, _t, _u = parse_payload(b"100", point(scale=0.1, offset=-2), NOW)
    assert v == pytest.approx(8.0)


def test_json_paths_value_time_unit() -> None:
    p = point(value_path="data.levels.1", time_path="ts", unit_path="data.u")
    v, t, u = parse_payload(b'{"ts": 1800000123, "data": {"levels": [1.0, 2.5], "u": "cm"}}', p, NOW)
    assert (v, t, u) == (2.5, 1_800_000_123.0, "cm")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1800000123", 1_800_000_123.0),  # seconds
        ("1800000123456", 1_800_000_123.456),  # milliseconds
        ('"2027-01-15T08:00:00Z"', 1_800_000_000.0),
        ('"2027-01-15T16:00:00+08:00"', 1_800_000_000.0),
    ],
)
def test_timestamps_seconds_ms_iso(raw: str, expected: float) -> None:
    _v, t, _u = parse_payload(b'{"v": 1, "t": %s}' % raw.encode(), point(value_path="v", time_path="t"), NOW)
    assert t == pytest.approx(expected)


def test_json_value_as_string_and_bool() -> None:
    assert parse_payload(b'{"v": "4.5"}', point(value_path="v"), NOW)[0] == 4.5
    assert parse_payload(b'{"v": true}', point(value_path="v"), NOW)[0] == 1.0


def test_json_without_paths_uses_default_unit_and_receive_time() -> None:
    v, t, u = parse_payload(b'{"v": 3}', point(value_path="v", unit="ppm"), NOW)
    assert (v, t, u) == (3.0, NOW, "ppm")


@pytest.mark.parametrize(
    ("payload", "p", "reason"),
    [
        (b"abc", {}, "not-a-number"),
        (b"", {}, "not-a-number"),
        (b"\xff\xfe", {}, "not-a-number"),
        (b"nan", {}, "not-finite"),
        (b"inf", {}, "not-finite"),
        (b"{not json", {"value_path": "v"}, "bad-json"),
        (b"\xff{", {"value_path": "v"}, "bad-json"),
        (b'{"x": 1}', {"value_path": "v"}, "missing-field"),
        (b'{"v": [1]}', {"value_path": "v.3"}, "missing-field"),
        (b'{"v": 5}', {"value_path": "v.x"}, "missing-field"),
        (b'{"v": null}', {"value_path": "v"}, "not-a-number"),
        (b'{"v": {"a": 1}}', {"value_path": "v"}, "not-a-number"),
        (b'{"v": "high"}', {"value_path": "v"}, "not-a-number"),
        (b'{"v": NaN}', {"value_path": "v"}, "not-finite"),
        (b'{"v": 1e999}', {"value_path": "v"}, "not-finite"),
        (b'{"v": 1, "t": "yesterday"}', {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": "2027-01-15T08:00:00"}', {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": true}', {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": [1]}', {"value_path": "v", "time_path": "t"}, "bad-time"),
    ],
)
def test_malformed_payloads_say_why(payload: bytes, p: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_payload(payload, point(**p), NOW)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("payload", "p", "reason"),
    [
        # Hostile or broken devices: none of these may escape as anything but PayloadError.
        (b"[" * 60_000, {"value_path": "v"}, "bad-json"),  # nesting deeper than the recursion limit
        (b'{"v": 1%s}' % (b"0" * 400), {"value_path": "v"}, "not-finite"),  # integer beyond float
        (b'{"v": 1, "t": NaN}', {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": Infinity}', {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": 1%s}' % (b"0" * 400), {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": -1e300}', {"value_path": "v", "time_path": "t"}, "bad-time"),
        (b'{"v": 1, "t": 1e300}', {"value_path": "v", "time_path": "t"}, "bad-time"),
    ],
)
def test_hostile_payloads_are_payload_errors(payload: bytes, p: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_payload(payload, point(**p), NOW)
    assert err.value.reason == reason


# -- MqttDriver.handle -----------------------------------------------------------------------------


class Harness:
    def __init__(self, devices: list[MqttDevice], max_payload: int = 1024) -> None:
        self.readings: list[Reading] = []
        self.malformed: list[str] = []
        broker = MqttBroker(id="village", host="127.0.0.1", max_payload_bytes=max_payload)
        self.driver = MqttDriver(broker, devices, client_id="t", password=None, on_malformed=self.malformed.append)
        self.driver._sink = self.readings.append  # what run() sets once connected

    def handle(self, topic: str, payload: bytes) -> list[Reading]:
        n = len(self.readings)
        self.driver.handle(topic, payload, NOW)
        return self.readings[n:]


def devices() -> list[MqttDevice]:
    return [
        MqttDevice(
            kind="mqtt",
            id="pump-1",
            broker="village",
            points=[
                MqttPoint(name="level", topic="v/pump-1/level", unit="m"),
                MqttPoint(name="temp", topic="v/pump-1/state", value_path="temp", unit="C"),
                MqttPoint(name="flow", topic="v/pump-1/state", value_path="flow"),
            ],
        ),
        MqttDevice(
            kind="mqtt",
            id="gas-1",
            broker="village",
            points=[
                MqttPoint(name="co", topic="v/gas/+/co", value_path="ppm", time_path="ts", unit="ppm"),
            ],
        ),
        MqttDevice(
            kind="mqtt",
            id="all-levels",
            broker="village",
            points=[
                MqttPoint(name="any_level", topic="v/+/level"),
            ],
        ),
    ]


def test_filters_are_the_distinct_subscriptions() -> None:
    h = Harness(devices())
    assert h.driver.filters == ["v/+/level", "v/gas/+/co", "v/pump-1/level", "v/pump-1/state"]
    assert h.driver.name == "mqtt:village"


def test_exact_topic_routes_to_its_point_and_to_matching_wildcards() -> None:
    h = Harness(devices())
    got = h.handle("v/pump-1/level", b"2.5")
    assert sorted((r.device, r.point, r.value, r.unit) for r in got) == [
        ("all-levels", "any_level", 2.5, None),
        ("pump-1", "level", 2.5, "m"),
    ]
    assert all(r.time == NOW and r.quality is Quality.GOOD for r in got)


def test_one_json_message_feeds_several_points() -> None:
    h = Harness(devices())
    got = h.handle("v/pump-1/state", b'{"temp": 21.5, "flow": 3}')
    assert sorted((r.point, r.value) for r in got) == [("flow", 3.0), ("temp", 21.5)]


def test_wildcard_route_and_source_time() -> None:
    h = Harness(devices())
    (r,) = h.handle("v/gas/kitchen/co", b'{"ppm": 35, "ts": 1800000000500}')
    assert (r.device, r.point, r.value, r.time, r.unit) == ("gas-1", "co", 35.0, 1_800_000_000.5, "ppm")
    assert h.handle("v/gas/kitchen/co2", b'{"ppm": 1}') == []
    assert h.handle("unrelated", b"1") == []
    assert h.malformed == []


def test_malformed_and_oversized_are_counted_and_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(devices(), max_payload=64)
    with caplog.at_level(logging.WARNING, logger="drivers.mqtt"):
        assert h.handle("v/pump-1/level", b"x" * 65) == []
        assert h.handle("v/pump-1/state", b'{"temp": "hot", "flow": 2}')[0].point == "flow"  # one bad point
        assert h.handle("v/gas/a/co", b"[[[[[[[[") == []
        assert h.handle("v/gas/a/co", b'{"ppm": 1, "ts": NaN}') == []
        for _ in range(100):
            h.handle("v/pump-1/level", b"garbage")
    # The exact-topic point and the wildcard point both fail to parse 'garbage'.
    assert h.malformed[:4] == ["oversized", "not-a-number", "bad-json", "bad-time"]
    assert h.malformed[4:] == ["not-a-number"] * 200
    # Logged at a limited rate: one line per reason, not 200 (the 'not-a-number' line came first
    # from the pump's state topic, so the 200 garbage payloads add no line at all).
    nan_lines = [r for r in caplog.records if "is not a number" in r.getMessage()]
    assert len(nan_lines) == 1
    assert len(caplog.records) == 4
    # And the driver still works.
    assert [r.value for r in h.handle("v/pump-1/level", b"1.0")] == [1.0, 1.0]


def test_hostile_payloads_through_handle_do_not_escape() -> None:
    h = Harness(devices(), max_payload=65_536)
    for payload in (b"[" * 60_000, b'{"ppm": 1%s}' % (b"0" * 400), b'{"ppm": 1, "ts": 1e300}'):
        assert h.handle("v/gas/a/co", payload) == []
    assert len(h.malformed) == 3


def test_route_cache_is_bounded() -> None:
    h = Harness(devices())
    for i in range(70_000):
        h.driver._route(f"v/gas/{i}/co")
    assert len(h.driver._cache) <= 65_536
    assert [r.device for r in h.handle("v/gas/x/co", b'{"ppm": 2, "ts": 1800000000}')] == ["gas-1"]
