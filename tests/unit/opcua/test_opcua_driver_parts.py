"""Parts of the OPC-UA driver that need no server: status → quality, errors, certificates."""

from __future__ import annotations

import datetime as dt
import math
import socket
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.subscription import DataChangeNotif, SubscriptionItemData
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from drivers.base import Quality, Reading
from drivers.opcua import (
    OpcUaDriver,
    _ensure_client_certificate,
    _first_certificate,
    _Handler,
    certificate_fingerprint,
)
from edge_config.opcua import OpcUaDevice
from edge_core.errors import DriverConnectError, DriverProtocolError, DriverTimeoutError

URI = "urn:township-edge-gateway:test-box"


def device() -> OpcUaDevice:
    return OpcUaDevice.model_validate(
        {
            "kind": "opcua",
            "id": "plc-01",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "points": [
                {"name": "level", "node_id": "ns=2;s=Level", "unit": "m"},
                {"name": "mode", "node_id": "ns=2;s=Mode"},
            ],
        }
    )


class Harness:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.lost: list[str] = []
        dev = device()
        self.handler = _Handler(dev, {1: dev.points[0], 2: dev.points[1]}, self.readings.append, self.lost.append)

    def change(
        self,
        handle: int,
        value: Any,
        status: int = StatusCodes.Good,
        source: dt.datetime | None = None,
        server: dt.datetime | None = None,
    ) -> Reading:
        dv = ua.DataValue(
            ua.Variant(value) if value is not None else None,
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=ua.DateTime.fromtimestamp(source.timestamp(), dt.UTC) if source else None,
            ServerTimestamp=ua.DateTime.fromtimestamp(server.timestamp(), dt.UTC) if server else None,
        )
        item = ua.MonitoredItemNotification(ClientHandle=ua.UInt32(handle), Value=dv)
        node: Any = None
        self.handler.datachange_notification(node, value, DataChangeNotif(SubscriptionItemData(), item))
        return self.readings[-1]


def status_error(code: int) -> UaStatusCodeError:
    """asyncua's own exception for a status code (its constructor is untyped)."""
    return UaStatusCodeError(code)  # type: ignore[no-untyped-call]


T0 = dt.datetime(2026, 11, 27, 8, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (StatusCodes.Good, Quality.GOOD),
        (StatusCodes.GoodClamped, Quality.GOOD),
        (StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
        (StatusCodes.UncertainSensorNotAccurate, Quality.UNCERTAIN),
        (StatusCodes.BadSensorFailure, Quality.BAD),
        (StatusCodes.BadCommunicationError, Quality.BAD),
    ],
)
def test_status_code_becomes_quality_and_the_value_is_kept(status: int, quality: Quality) -> None:
    r = Harness().change(1, 2.5, status, source=T0)
    assert r == Reading(device="plc-01", point="level", value=2.5, time=T0.timestamp(), unit="m", quality=quality)


def test_missing_value_is_nan_and_bad() -> None:
    r = Harness().change(1, None, StatusCodes.BadNoCommunication, server=T0)
    assert math.isnan(r.value)
    assert r.quality is Quality.BAD
    assert r.time == T0.timestamp()  # no source timestamp: the server's


def test_integers_and_booleans_become_floats() -> None:
    h = Harness()
    assert h.change(1, 7, source=T0).value == 7.0
    assert h.change(1, True, source=T0).value == 1.0
    assert h.change(1, False, source=T0).value == 0.0


def test_non_numeric_value_is_bad_nan(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    r = h.change(2, "auto", source=T0)
    assert (r.point, r.quality) == ("mode", Quality.BAD)
    assert math.isnan(r.value)
    h.change(2, "manual", source=T0)
    assert sum("not a number" in m for m in caplog.messages) == 1  # said once per point


def test_no_timestamps_means_receive_time() -> None:
    before = dt.datetime.now(dt.UTC).timestamp()
    r = Harness().change(1, 1.0)
    assert before <= r.time <= dt.datetime.now(dt.UTC).timestamp()


def test_unknown_handle_is_ignored() -> None:
    h = Harness()
    node: Any = None
    item = ua.MonitoredItemNotification(ClientHandle=ua.UInt32(99), Value=ua.DataValue(ua.Variant(1.0)))
    h.handler.datachange_notification(node, 1.0, DataChangeNotif(SubscriptionItemData(), item))
    assert h.readings == []


def test_bad_subscription_status_ends_the_session() -> None:
    h = Harness()
    h.handler.status_change_notification(ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(StatusCodes.Good))))
    assert h.lost == []
    h.handler.status_change_notification(
        ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(StatusCodes.BadTimeout)))
    )
    assert h.lost == ["subscription ended: BadTimeout"]


@pytest.mark.parametrize(
    ("exc", "cls", "code"),
    [
        (TimeoutError(), DriverTimeoutError, "timeout"),
        (ConnectionRefusedError(111, "Connection refused"), DriverConnectError, "unreachable"),
        (status_error(StatusCodes.BadTimeout), DriverTimeoutError, "timeout"),
        (status_error(StatusCodes.BadServerHalted), DriverConnectError, "connection_lost"),
        (status_error(StatusCodes.BadUserAccessDenied), DriverProtocolError, "BadUserAccessDenied"),
        (status_error(StatusCodes.BadIdentityTokenRejected), DriverProtocolError, "BadIdentityTokenRejected"),
        (UaError("No matching endpoints"), DriverProtocolError, "protocol"),
    ],
)
def test_foreign_errors_are_translated(exc: BaseException, cls: type, code: str, tmp_path: Path) -> None:
    err = OpcUaDriver(device(), tmp_path, tmp_path)._translate(exc, "connecting to")
    assert type(err) is cls
    assert (err.device_id, err.code) == ("plc-01", code)
    assert str(err).startswith("plc-01: connecting to opc.tcp://127.0.0.1:4840")


def test_client_certificate_created_once_then_reused(tmp_path: Path) -> None:
    d = tmp_path / "opcua" / "client"
    cert, key = _ensure_client_certificate(d, URI)
    assert (d / "cert.der").read_bytes() == cert
    assert (d / "key.pem").read_bytes() == key
    assert (d / "key.pem").stat().st_mode & 0o777 == 0o600
    parsed = x509.load_der_x509_certificate(cert)
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert URI in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert socket.gethostname() in san.get_values_for_type(x509.DNSName)
    assert parsed.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=3000)

    again = _ensure_client_certificate(d, URI)
    assert again == (cert, key)
    assert not list(d.glob(".*.tmp"))


def test_new_application_uri_renews_certificate_but_keeps_key(tmp_path: Path) -> None:
    d = tmp_path / "client"
    cert, key = _ensure_client_certificate(d, URI)
    cert2, key2 = _ensure_client_certificate(d, URI + "-renamed")
    assert key2 == key
    assert cert2 != cert
    san = x509.load_der_x509_certificate(cert2).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert URI + "-renamed" in san.value.get_values_for_type(x509.UniformResourceIdentifier)


def test_first_certificate_of_a_chain(tmp_path: Path) -> None:
    a, _ = _ensure_client_certificate(tmp_path / "a", URI)
    b, _ = _ensure_client_certificate(tmp_path / "b", URI)
    assert _first_certificate(a + b) == a
    assert _first_certificate(a) == a
    assert certificate_fingerprint(a) != certificate_fingerprint(b)
    assert len(certificate_fingerprint(a)) == 64


def test_driver_paths_live_under_the_state_directory(tmp_path: Path) -> None:
    drv = OpcUaDriver(device(), tmp_path / "state", tmp_path)
    assert drv.name == "plc-01"
    assert drv.client_certificate_path == tmp_path / "state" / "opcua" / "client" / "cert.der"
    assert drv.trusted_certificate_path == tmp_path / "state" / "opcua" / "trusted" / "plc-01.der"
