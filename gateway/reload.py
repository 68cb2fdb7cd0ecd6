"""SIGHUP (and the page's zone edits): read the site file again and apply what can change live.

Rules and cameras' zones change at once, without dropping open incidents; anything else is logged
as waiting for a restart. Links halted on a refusing receiver try again, with any cursor an
operator moved (``edge-gateway outbox skip``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from edge_config import LoadedConfig, load
from edge_core.errors import ConfigError
from gateway.cameras import CameraSet
from gateway.outbox import Outbox
from gateway.rules import RuleEngine
from gateway.supervisor import Supervisor
from gateway.zones import without_live

__all__ = ["reread", "resume_halted"]

log = logging.getLogger(__name__)


def resume_halted(supervisors: Sequence[Supervisor], outbox: Outbox) -> None:
    halted = [s for s in supervisors if s.health.halted]
    if halted:
        outbox.refresh_cursors()
        for sup in halted:
            log.info("reload: %s tries again", sup.name)
            sup.resume()


async def reread(loaded: LoadedConfig, rules: RuleEngine, cameras: CameraSet) -> LoadedConfig | None:
    """Apply the file's rules and zones; the new config when nothing else changed, else None."""
    # Read in a thread: a big or hostile file must not stall the loop (and the watchdog).
    try:
        new = await asyncio.to_thread(load, loaded.path)
    except ConfigError as exc:
        log.error("reload refused, keeping the running rules: %s", "; ".join(exc.problems))
        return None
    except Exception:  # a file no check foresaw: keep running on the rules we have
        log.exception("reload failed, keeping the running rules")
        return None
    restart = without_live(new.config) != without_live(loaded.config)
    if restart:
        log.warning("reload: only [[rules]] and cameras' zones are applied live; other changes need a restart")
    rules.reload(new.config.rules, time.time())
    zoned = cameras.apply_zones(new.config)
    log.info("reload: %d rules and %d camera zones active", len(new.config.rules), zoned)
    return None if restart else new
