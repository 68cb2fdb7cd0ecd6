"""TLS contexts from site settings: always verifying, only the named CA, and file errors named."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest

from drivers.tls import client_context, tls_failure
from edge_config.tls import TlsSettings
from edge_core.errors import DriverProtocolError
from tests.pki import Pki


def mutual(pki: Pki) -> TlsSettings:
    return TlsSettings.model_validate(
        {"ca_file": pki.ca_cert.name, "client_cert": pki.client_cert.name, "client_key": {"file": pki.client_key.name}}
    )


def test_context_verifies_host_and_trusts_only_the_named_ca(pki: Pki) -> None:
    ctx = client_context(mutual(pki), pki.ca_cert.parent, link="mqtt:village")
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    # A county CA must not widen into "the county CA and every public CA".
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test CA"),),)]


def test_no_ca_file_means_the_system_trust_store(pki: Pki) -> None:
    ctx = client_context(TlsSettings(), pki.ca_cert.parent, link="upstream:webhook")
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert not any(c["subject"] == ((("commonName", "test CA"),),) for c in ctx.get_ca_certs())


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("missing-ca", "TLS CA file {dir}/test-ca.pem not found"),
        ("missing-key", "TLS client_key {dir}/test-client.key not found"),
        ("junk-ca", "TLS CA file {dir}/test-ca.pem: not a usable PEM certificate or key"),
        ("wrong-key", "TLS client_cert {dir}/test-client.pem or client_key {dir}/test-client.key: not a usable PEM"),
    ],
)
def test_file_problems_name_the_link_and_the_file(pki: Pki, damage: str, words: str) -> None:
    directory = pki.ca_cert.parent
    if damage == "missing-ca":
        pki.ca_cert.unlink()
    elif damage == "missing-key":
        pki.client_key.unlink()
    elif damage == "junk-ca":
        pki.ca_cert.write_text("not a certificate\n")
    else:
        pki.client_key.write_bytes(pki.server_key.read_bytes())  # a key that is not the cert's
    with pytest.raises(DriverProtocolError) as info:
        client_context(mutual(pki), directory, link="mqtt:village")
    assert str(info.value).startswith("mqtt:village: " + words.format(dir=directory)), str(info.value)
    assert info.value.code == "tls-config"


def test_handshake_failures_say_what_to_check() -> None:
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert tls_failure(untrusted) == (
        "the server's TLS certificate is not trusted (unable to get local issuer certificate): check tls.ca_file"
    )
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] alert")
    alert.reason = "TLSV1_ALERT_PROTOCOL_VERSION"
    assert tls_failure(alert) == "TLS handshake failed (TLSV1_ALERT_PROTOCOL_VERSION)"


def test_key_may_come_from_a_systemd_credential(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = TlsSettings.model_validate(
        {"ca_file": str(pki.ca_cert), "client_cert": str(pki.client_cert), "client_key": {"credential": "box-key"}}
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(
        DriverProtocolError, match=r"client_key: credential 'box-key': \$CREDENTIALS_DIRECTORY is not set"
    ):
        client_context(tls, tmp_path, link="mqtt:village")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "box-key").write_bytes(pki.client_key.read_bytes())
    pki.client_key.unlink()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    # The chain loaded: the context can prove the box's identity in a real handshake.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client_context(tls, tmp_path, link="mqtt:village").wrap_bio(*client, server_hostname="127.0.0.1")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    s = server_ctx.wrap_bio(*server, server_side=True)
    for _ in range(10):
        for end in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        server[0].write(client[1].read())
        client[0].write(server[1].read())
    peer = s.getpeercert()
    assert peer is not None and peer["subject"] == ((("commonName", "edge-box-1"),),)
