"""OpcUaDevice: what a technician may write, and the errors for what they may not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_config import load, load_text
from edge_config.opcua import OpcUaAnonymous, OpcUaDevice, OpcUaUsername
from edge_core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "edge_config" / "examples" / "opcua-pumphouse.toml"
FP = "3A:7F:0C:91:5E:22:B4:D8:6A:11:C0:9E:47:F3:28:6B:D5:02:8C:1A:9F:E4:73:3B:60:CC:81:0D:5A:B2:97:E6"


def dev(**kw: Any) -> OpcUaDevice:
    data: dict[str, Any] = {
        "kind": "opcua",
        "id": "plc-01",
        "endpoint": "opc.tcp://192.168.1.20:4840",
        "points": [{"name": "level", "node_id": "ns=2;s=Tank.Level"}],
    }
    data.update(kw)
    return OpcUaDevice.model_validate(data)


def errors(**kw: Any) -> str:
    with pytest.raises(ValidationError) as err:
        dev(**kw)
    return str(err.value)


def test_defaults_are_anonymous_no_security_tofu() -> None:
    d = dev()
    assert isinstance(d.identity, OpcUaAnonymous)
    assert d.security_policy == "None"
    assert d.effective_security_mode == "None"
    assert d.server_trust == "tofu"
    assert d.pinned_fingerprint is None
    p = d.points[0]
    assert (p.sampling_interval_ms, p.publishing_interval_ms, p.deadband, p.queue_size) == (500.0, 1000.0, 0.0, 1)
    assert p.address == "ns=2;s=Tank.Level"
    assert (d.alarms, d.alarm_min_severity) == (False, 1)


def test_basic256sha256_defaults_to_sign_and_encrypt() -> None:
    assert dev(security_policy="Basic256Sha256").effective_security_mode == "SignAndEncrypt"
    assert dev(security_policy="Basic256Sha256", security_mode="Sign").effective_security_mode == "Sign"


def test_pinned_fingerprint_is_normalised() -> None:
    d = dev(security_policy="Basic256Sha256", server_trust="pinned", server_certificate_sha256=FP)
    assert d.pinned_fingerprint == FP.replace(":", "").lower()
    assert len(d.pinned_fingerprint or "") == 64


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"security_mode": "Sign"}, "security_mode needs security_policy = 'Basic256Sha256'"),
        ({"security_policy": "Basic128Rsa15"}, "security_policy"),
        ({"security_policy": "Basic256Sha256", "server_trust": "pinned"}, "needs server_certificate_sha256"),
        ({"server_trust": "pinned", "server_certificate_sha256": FP}, "needs security_policy = 'Basic256Sha256'"),
        ({"server_certificate_sha256": FP}, "only used with server_trust = 'pinned'"),
        (
            {"security_policy": "Basic256Sha256", "server_trust": "pinned", "server_certificate_sha256": "abc"},
            "64 hex digits",
        ),
        ({"endpoint": "http://192.168.1.20:4840"}, "opc.tcp://"),
        ({"endpoint": "opc.tcp://"}, "endpoint"),
        ({"timeout_s": 0.1}, "timeout_s"),
        ({"watchdog_s": 0}, "watchdog_s"),
        ({"identity": {"kind": "username", "username": "op"}}, "password"),
        ({"identity": {"kind": "kerberos"}}, "identity"),
        ({"identity": {"kind": "certificate", "certificate": "user.pem"}}, "give both 'certificate' and 'private_key'"),
        ({"points": []}, "points"),
        (
            {"points": [{"name": "a", "node_id": "i=1"}, {"name": "a", "node_id": "i=2"}]},
            "repeated: a",
        ),
        ({"points": [{"name": "a"}]}, "give exactly one of 'node_id' or 'browse_path'"),
        (
            {"points": [{"name": "a", "node_id": "i=1", "browse_path": "/2:A"}]},
            "give exactly one of 'node_id' or 'browse_path'",
        ),
        ({"points": [{"name": "a", "node_id": "ns=2;i=notanumber"}]}, "not a NodeId"),
        ({"points": [{"name": "a", "node_id": "Tank.Level"}]}, "not a NodeId"),
        ({"points": [{"name": "a", "browse_path": "/2:Tank<bad"}]}, "not a browse path"),
        ({"points": [{"name": "a", "browse_path": "/2:Tank/"}]}, "not a browse path"),
        ({"points": [{"name": "a", "node_id": "i=1", "sampling_interval_ms": -1}]}, "sampling_interval_ms"),
        ({"points": [{"name": "a", "node_id": "i=1", "publishing_interval_ms": 1}]}, "publishing_interval_ms"),
        ({"points": [{"name": "a", "node_id": "i=1", "deadband": -0.5}]}, "deadband"),
        ({"points": [{"name": "a", "node_id": "i=1", "queue_size": 0}]}, "queue_size"),
        ({"alarm_min_severity": 0}, "alarm_min_severity"),
        ({"alarm_min_severity": 1001}, "alarm_min_severity"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_invalid_devices_say_what_is_wrong(kw: dict[str, Any], message: str) -> None:
    assert message in errors(**kw)


@pytest.mark.parametrize(
    "node_id",
    [
        "ns=2;s=Tank.Level",
        "i=2258",
        'ns=3;s="Tank"."Level"',
        "nsu=urn:vendor:plc;s=Level",
        "ns=4;g=09087e75-8e5e-499b-954f-f2a9603db28a",
    ],
)
def test_node_id_forms_accepted(node_id: str) -> None:
    assert dev(points=[{"name": "a", "node_id": node_id}]).points[0].node_id == node_id


def test_username_identity_keeps_a_secret_reference_not_a_value() -> None:
    d = dev(identity={"kind": "username", "username": "op", "password": {"credential": "plc_pw"}})
    assert isinstance(d.identity, OpcUaUsername)
    assert d.identity.password.credential == "plc_pw"


def test_example_site_loads() -> None:
    cfg = load(EXAMPLE).config
    devices = [d for d in cfg.devices if isinstance(d, OpcUaDevice)]
    assert [d.id for d in devices] == ["pump-plc-01", "chlorine-dosing-01"]
    plc, dosing = devices
    assert plc.effective_security_mode == "SignAndEncrypt"
    assert (plc.alarms, plc.alarm_min_severity) == (True, 300)
    assert isinstance(plc.identity, OpcUaUsername)
    assert {p.name for p in plc.points if p.browse_path} == {"outlet_pressure", "pump1_current"}
    assert dosing.server_trust == "pinned"
    assert dosing.pinned_fingerprint == FP.replace(":", "").lower()


def test_bad_node_in_a_site_file_names_file_line_and_field(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace('node_id = "ns=2;i=1001"', 'node_id = "ns=2;i=abc"')
    path = tmp_path / "site.toml"
    with pytest.raises(ConfigError) as err:
        load_text(text, path)
    line = next(n for n, raw in enumerate(text.splitlines(), start=1) if "ns=2;i=abc" in raw)
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:{line}: devices[1].points[0].node_id: ")
    assert "not a NodeId" in problem
