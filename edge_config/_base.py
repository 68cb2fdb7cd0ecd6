"""The base every config model shares, and the small reusable field types."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, AllowInfNan, BaseModel, ConfigDict, Field, SecretStr, Strict, model_validator

__all__ = ["Count", "HostName", "Identifier", "Number", "SecretRef", "Section"]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Stable id: letters, digits, '.', '_', '-'; used in topics, URLs and metrics.",
    ),
]

# Numbers in a site file must be written as numbers: pydantic would otherwise read "3.5" as 3.5
# and true as 1, and a quoted limit or a flag in the wrong key would pass unnoticed. (An integer
# is still a fine Number: 4 means 4.0.) TOML also writes nan and inf, which no setting means: a
# threshold of nan never fires.
Number = Annotated[float, Strict(), AllowInfNan(False)]
Count = Annotated[int, Strict()]


def _plain_host(value: str) -> str:
    # A URL pasted from a browser or a vendor's manual ("http://10.0.0.5/onvif") would only fail
    # later, as an unreachable host; say what goes where now.
    if "://" in value or "/" in value or any(c.isspace() for c in value):
        raise ValueError(
            f"{value!r} is not a host: write the name or address alone (such as 10.0.0.5); the port has its own key"
        )
    return value


HostName = Annotated[
    str,
    Field(min_length=1, max_length=253),
    AfterValidator(_plain_host),
]

_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class SecretRef(Section):
    """Where a secret lives. Secret values are never written in the config file itself.

    ``credential`` names a systemd credential (``LoadCredential=NAME:...`` in the unit), read from
    ``$CREDENTIALS_DIRECTORY/NAME``; ``file`` is a path (relative paths are relative to the config
    file). Trailing newlines are stripped.
    """

    credential: str | None = Field(
        default=None, max_length=128, description="systemd credential name, read from $CREDENTIALS_DIRECTORY."
    )
    file: str | None = Field(default=None, max_length=4096, description="Path of a file holding the secret.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.credential is None) == (self.file is None):
            raise ValueError("give exactly one of 'credential' or 'file'")
        if self.credential is not None and not _CREDENTIAL_NAME.match(self.credential):
            raise ValueError("a credential name has only letters, digits, '.', '_' and '-'")
        return self

    def read(self, base_dir: Path) -> SecretStr:
        """Read the secret now. Raises OSError (with the path, never the value) when it is missing."""
        path = self.path(base_dir)
        try:
            return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
        except UnicodeDecodeError:
            raise OSError(errno.EINVAL, "not UTF-8 text: write the secret as plain text", str(path)) from None
        except ValueError:  # a NUL in the path
            raise OSError(errno.EINVAL, "the path holds a NUL character", repr(str(path))) from None

    def path(self, base_dir: Path) -> Path:
        """Where the secret is, for libraries that take a file name (a TLS private key)."""
        if self.credential is not None:
            creds = os.environ.get("CREDENTIALS_DIRECTORY")
            if not creds:
                raise FileNotFoundError(
                    f"credential {self.credential!r}: $CREDENTIALS_DIRECTORY is not set "
                    "(run under systemd with LoadCredential=, or use file = ...)"
                )
            path = Path(creds) / self.credential
        else:
            assert self.file is not None
            path = Path(self.file)
            if not path.is_absolute():
                path = base_dir / path
        return path
