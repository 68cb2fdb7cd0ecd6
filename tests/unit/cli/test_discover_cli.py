"""`edge-gateway discover`: what it prints is right to paste, and bad input is one clear line."""

from __future__ import annotations

import pytest

from drivers.discovery import DiscoveredCamera, config_stanza
from gateway.cli import main


def test_the_stanza_points_the_password_where_the_unit_loads_credentials_from() -> None:
    cam = DiscoveredCamera(endpoint="urn:uuid:1", host="192.0.2.7", port=80, xaddrs=(), scopes=(), types="")
    stanza = config_stanza(cam, "cam-gate")
    # The unit and the README keep credentials in /etc/edge-gateway/credentials/, which only
    # root reads; /etc/edge-gateway/ itself holds the site file.
    assert "LoadCredential=cam-gate_password:/etc/edge-gateway/credentials/cam-gate_password" in stanza


def test_timeout_must_be_a_positive_number_of_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("-1", "0", "soon", "3600"):
        with pytest.raises(SystemExit) as exc:
            main(["discover", "--timeout", bad])
        assert exc.value.code == 2
        assert "argument --timeout" in capsys.readouterr().err


def test_a_malformed_probe_target_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGE_GATEWAY_DISCOVERY_TARGET", "127.0.0.1:abc")
    assert main(["discover", "--timeout", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "discovery failed: probe target '127.0.0.1:abc' (EDGE_GATEWAY_DISCOVERY_TARGET?) is not host:port" in err
