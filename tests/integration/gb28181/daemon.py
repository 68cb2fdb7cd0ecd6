"""A site file for the GB/T 28181 tests that run the daemon: the box, its API (token ``t``), one
``[[upstream.gb28181]]`` table per platform of the in-suite kind, and the devices given."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.integration.gb28181.platform import DEVICE_ID, PLATFORM_ID
from tests.sites import GB_BOX

PASSWORD = "s3cret"
TOKEN = "t"


def gb_site(tmp_path: Path, tables: dict[str, dict[str, object]], devices: str) -> Path:
    """``tables`` maps each channel's id to its keys (``port`` at least) over short test timings."""
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    (tmp_path / "gbpw").write_text(f"{PASSWORD}\n")
    upstream = ""
    for name, keys in tables.items():
        table = {"request_timeout_s": 0.5, "max_backoff_s": 1} | keys
        upstream += (
            f'\n[[upstream.gb28181]]\nid = "{name}"\nplatform_id = "{PLATFORM_ID}"\nhost = "127.0.0.1"\n'
            f'device_id = "{DEVICE_ID}"\npassword = {{ file = "gbpw" }}\n'
        )
        upstream += "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in table.items())
    site = tmp_path / "site.toml"
    site.write_text(
        f"""
state_dir = "{tmp_path / "state"}"
{GB_BOX}[api]
port = {free_port()}
token = {{ file = "token" }}
{upstream}
[outbox]
commit_interval_ms = 2
{devices}"""
    )
    return site
