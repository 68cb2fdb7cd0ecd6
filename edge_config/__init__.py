"""Site configuration: pydantic models, loading, checking and the JSON Schema."""

from edge_config.loader import LoadedConfig, check_secrets, load, load_text
from edge_config.model import Device, GatewayConfig

__all__ = ["Device", "GatewayConfig", "LoadedConfig", "check_secrets", "load", "load_text"]
