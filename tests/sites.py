"""The smallest valid site file (one box, one broker, one MQTT terminal), for tests that need a
site but are about something else. Extra lines go into the [api] and [[brokers]] tables."""

from __future__ import annotations

from pathlib import Path


def one_terminal_site(
    state_dir: Path | None = None, *, api: str = 'token = { file = "token" }', broker: str = ""
) -> str:
    head = f'state_dir = "{state_dir}"\n' if state_dir is not None else ""
    return (
        head
        + f"""[site]
box_id = "box-1"
township = "t"
village = "v"
[api]
{api}
[[brokers]]
id = "village"
host = "127.0.0.1"
{broker}
[[devices]]
kind = "mqtt"
id = "river-1"
broker = "village"
  [[devices.points]]
  name = "level"
  topic = "r/1"
"""
    )


# The box of the GB/T 28181 tests: its civil code is what the channel ids are checked against.
GB_BOX = """[site]
box_id = "box-1"
township = "Panlian"
village = "Xinhe"
civil_code = "510421103"
"""
