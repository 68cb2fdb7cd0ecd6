"""TLS on the links that leave the box or cross the village network: brokers and the webhook."""

from __future__ import annotations

from pydantic import Field, model_validator

from edge_config._base import SecretRef, Section

__all__ = ["TlsSettings"]


class TlsSettings(Section):
    """Connect with TLS: which certificate authorities to trust and, for mutual TLS, who we are.

    The server's certificate is always verified, host name included; there is no switch to turn
    that off. A broker with a self-signed certificate is trusted by naming that certificate as
    ``ca_file``.
    """

    ca_file: str | None = Field(
        default=None,
        max_length=4096,
        description="PEM file of the certificate authorities to trust (relative to the site file), such as "
        "the county's own CA; none: the system's trust store.",
    )
    client_cert: str | None = Field(
        default=None,
        max_length=4096,
        description="PEM certificate (chain) this box presents when the server asks for mutual TLS.",
    )
    client_key: SecretRef | None = Field(
        default=None, description="Private key of client_cert (PEM, unencrypted), from a credential or file."
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give both 'client_cert' and 'client_key' for mutual TLS, or neither")
        return self
