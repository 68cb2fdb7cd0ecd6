"""Hostile publishers on the village broker: memory stays bounded, and any payload is either a
finite reading or a counted PayloadError (property-based)."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import Reading
from drivers.mqtt import MqttDriver, PayloadError, parse_payload
from edge_config.mqtt import MqttBroker, MqttDevice, MqttPoint

NOW = 1_800_000_000.0
REASONS = {"not-a-number", "bad-json", "missing-field", "bad-time", "not-finite", "bad-unit"}


def test_the_route_cache_is_bounded_in_bytes_not_only_entries() -> None:
    broker = MqttBroker(id="b", host="127.0.0.1", max_payload_bytes=1024)
    dev = MqttDevice(kind="mqtt", id="gas-1", broker="b", points=[MqttPoint(name="co", topic="v/gas/#")])
    drv = MqttDriver(broker, [dev], client_id="t", password=None, on_malformed=lambda _r: None)
    got: list[Reading] = []
    drv._sink = got.append
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        # 1,000 topics of 60 kB under the wildcard: 60 MB cached before, with the entry cap only.
        for i in range(1000):
            drv.handle(f"v/gas/{i:04d}/" + "x" * 60_000, b"1", NOW)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 1000  # every message still routed
    assert after - before < 16 << 20, f"{(after - before) / 1e6:.0f} MB kept"
    # Short topics are still cached, within the byte budget.
    for i in range(50_000):
        drv.handle(f"v/gas/{i}/co", b"1", NOW)
    assert drv._cache_bytes <= 8 << 20


def test_a_unit_with_a_lone_surrogate_is_refused() -> None:
    p = MqttPoint(name="co", topic="t", value_path="v", unit_path="u")
    with pytest.raises(PayloadError) as info:
        parse_payload(b'{"v": 1, "u": "\\ud800"}', p, NOW)
    assert info.value.reason == "bad-unit"


_paths = st.one_of(st.none(), st.sampled_from(["v", "a.b", "a.0", "0", "x.y.z", "ts", "u"]))
_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_docs = st.recursive(
    _json_leaves,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["v", "a", "b", "ts", "u", "0"]), kids),
    max_leaves=12,
)


def _encode(doc: Any) -> bytes:
    import json

    return json.dumps(doc).encode()


_payloads = st.one_of(
    st.binary(max_size=120),
    _docs.map(_encode),
    st.sampled_from([b"[" * 100_000, b"1" * 5000, b"nan", b"-inf", b'{"v": 1e999}', b'"\\udfff"', b"\xff"]),
)


@settings(max_examples=400, deadline=1000)
@given(
    payload=_payloads,
    value_path=_paths,
    time_path=_paths,
    unit_path=_paths,
    scale=st.floats(-1e12, 1e12),
    offset=st.floats(-1e12, 1e12),
)
def test_any_payload_is_a_finite_reading_or_a_payload_error(
    payload: bytes, value_path: str | None, time_path: str | None, unit_path: str | None, scale: float, offset: float
) -> None:
    p = MqttPoint(
        name="x", topic="t", value_path=value_path, time_path=time_path, unit_path=unit_path, scale=scale, offset=offset
    )
    reason: str | None
    try:
        value, t, unit = parse_payload(payload, p, NOW)
    except PayloadError as exc:
        reason = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason in REASONS
        return
    assert math.isfinite(value)
    assert math.isfinite(t) and -62135596800 < t < 253402300800
    assert unit is None or (isinstance(unit, str) and unit.encode("utf-8") is not None)
