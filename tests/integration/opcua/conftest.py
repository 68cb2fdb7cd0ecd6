"""Fixtures for the OPC-UA driver tests; the helpers live in opcua_fixtures (a unique name)."""

from opcua_fixtures import pumphouse, secure_pumphouse, start_run, state_dir

__all__ = ["pumphouse", "secure_pumphouse", "start_run", "state_dir"]
