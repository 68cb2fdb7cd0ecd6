"""`edge-gateway discover`: what it prints is right to paste, and bad input is one clear line."""

from __future__ import annotations

from drivers.discovery import DiscoveredCamera, config_stanza


def test_the_stanza_points_the_password_where_the_unit_loads_credentials_from() -> None:
    cam = DiscoveredCamera(endpoint="urn:uuid:1", host="192.0.2.7", port=80, xaddrs=(), scopes=(), types="")
    stanza = config_stanza(cam, "cam-gate")
    # The unit and the README keep credentials in /etc/edge-gateway/credentials/, which only
    # root reads; /etc/edge-gateway/ itself holds the site file.
    assert "LoadCredential=cam-gate_password:/etc/edge-gateway/credentials/cam-gate_password" in stanza
