"""`edge-gateway`: run the daemon, check or describe a config, run the demo site, find cameras."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from edge_core.errors import ConfigError, GatewayError
from edge_core.i18n import say
from edge_core.tasks import daemon_work_running
from gateway.logsetup import setup_logging

__all__ = ["main"]

log = logging.getLogger(__name__)

_SERVICE_CACHE = "/var/lib/edge-gateway/numba-cache"  # Environment=NUMBA_CACHE_DIR= in the unit


_early_signals: list[int] = []


def _note_early_signal(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


async def run_daemon(config_path: Path) -> int:
    """`edge-gateway run`: load, run until SIGTERM/SIGINT, reload on SIGHUP."""
    stop = asyncio.Event()
    reload: list[Callable[[], object]] = []  # SIGHUP's reread runs in the task gw.reload returns
    loop = asyncio.get_running_loop()
    # First of all: a stop that comes while the gateway is still being imported and built (seconds
    # on a small box) must end the start cleanly, not kill the process by signal.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: reload[0]() if reload else log.info("SIGHUP while starting: ignored")
    )
    if any(s in (signal.SIGTERM, signal.SIGINT) for s in _early_signals):
        return 0
    from edge_config import check_secrets, load
    from gateway.app import Gateway

    loaded = load(config_path)
    problems, unchecked = check_secrets(loaded)
    if problems or unchecked:
        # The daemon needs every secret now; a credential that cannot be checked is missing here.
        raise ConfigError(f"{config_path}: secrets missing", problems + unchecked)
    await asyncio.sleep(0)  # a signal that came during the imports is handled now
    if stop.is_set():
        return 0
    gw = Gateway(loaded)
    reload.append(gw.reload)
    await gw.run(stop)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    # Until the event loop takes the signals over, they are noted here (the default action of
    # SIGTERM and SIGHUP would kill the process).
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _note_early_signal)
    setup_logging(args.log_level)
    rc = _run_reporting_config_problems(run_daemon(Path(args.config)))
    if daemon_work_running():
        # A stop during a first start leaves the kernel compiler running in its daemon thread on
        # purpose; finalising the interpreter under it aborts the process ("terminate called without
        # an active exception", exit by SIGABRT). Everything durable is closed by now: leave as is.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def _run_reporting_config_problems(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run(main); a config problem, also one raised inside a TaskGroup, is printed as its
    lines with exit status 2."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        return 0  # Ctrl-C before the event loop took over the signal
    except (ConfigError, ExceptionGroup) as exc:
        problems = _config_problems(exc)
        if problems is None:
            raise
    for line in problems:
        print(line, file=sys.stderr)
    return 2


def _config_problems(exc: BaseException) -> list[str] | None:
    """The problem lines of a ConfigError, also when a TaskGroup wrapped it (the API's port is
    found taken inside the gateway's TaskGroup); None when anything else failed, which keeps its
    traceback."""
    if isinstance(exc, ConfigError):
        return exc.problems
    if not isinstance(exc, BaseExceptionGroup):
        return None
    lines: list[str] = []
    for sub in exc.exceptions:
        found = _config_problems(sub)
        if found is None:
            return None
        lines += found
    return lines


def _cmd_config_check(args: argparse.Namespace) -> int:
    from edge_config import check_secrets, load

    try:
        loaded = load(args.file)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    problems, notes = check_secrets(loaded)
    for line in problems:
        print(line, file=sys.stderr)
    for line in notes:
        print(f"note: {line}")
    if problems:
        return 2
    cfg = loaded.config
    for gb in cfg.upstream.gb28181:
        channels = sum(1 for d in cfg.devices if getattr(d, "national_id", None))
        print(
            f"note: GB/T 28181 {gb.id}: registers as {gb.device_id} with {gb.platform_id} at "
            f"{gb.host}:{gb.port}/{gb.transport} (realm {gb.domain}), {_count(channels, 'camera channel')}"
        )
    print(
        f"{args.file}: OK ({_count(len(cfg.devices), 'device')}, {_count(len(cfg.rules), 'rule')}, "
        f"{_count(len(cfg.brokers), 'broker')}, box {cfg.site.box_id})"
    )
    return 0


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _cmd_config_schema(_args: argparse.Namespace) -> int:
    from edge_config import GatewayConfig

    print(json.dumps(GatewayConfig.model_json_schema(), indent=2, ensure_ascii=False))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    setup_logging(args.log_level)
    state_dir = Path(args.state_dir) if args.state_dir else None

    async def until_stopped() -> int:
        # Ctrl-C and SIGTERM both stop the demo the way they stop the daemon: the gateway
        # flushes, the simulators stop and the temporary folder (with the token) is removed.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        return await run_demo(port=args.port, state_dir=state_dir, stop=stop)

    return _run_reporting_config_problems(until_stopped())


def _cmd_discover(args: argparse.Namespace) -> int:
    from drivers.discovery import discover_command

    return discover_command(args.timeout, args.config)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from gateway.doctor import run_doctor

    return asyncio.run(run_doctor(Path(args.config), Path(args.unit)))


def _cmd_warm(_args: argparse.Namespace) -> int:
    from gateway.warm import warm_kernels

    warm_kernels(lambda line: print(line, flush=True))
    cache = os.environ.get("NUMBA_CACHE_DIR")
    if cache:
        print(f"cached in {cache}")
    else:
        # The unit points NUMBA_CACHE_DIR at the state directory, so a cache beside the package
        # spares the service nothing: say so, or 'warm by hand' silently does not help.
        print(
            "cached beside the package (NUMBA_CACHE_DIR is not set), where the service does not look; "
            f"for the service run: NUMBA_CACHE_DIR={_SERVICE_CACHE} edge-gateway warm"
        )
    return 0


def _cmd_outbox_skip(args: argparse.Namespace) -> int:
    from edge_config import load
    from gateway.app import default_state_dir
    from gateway.outbox import skip_event

    loaded = load(Path(args.config))
    path = default_state_dir(loaded.config) / "outbox.sqlite3"
    try:
        print(skip_event(path, args.consumer, args.seq))
    except GatewayError as exc:
        print(f"edge-gateway outbox skip: {exc}", file=sys.stderr)
        return 1
    return 0


def _seconds(text: str) -> float:
    """A wait given on the command line: a number of seconds, more than 0 and at most a minute."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"{text} s: give more than 0 and at most 60 seconds")
    return value


def _version() -> str:
    # What a technician reports when asking for help; a checkout that was never installed has none.
    try:
        return importlib.metadata.version("township-edge-gateway")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-gateway", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway daemon")
    run.add_argument("--config", required=True, help="site TOML file (e.g. /etc/edge-gateway/site.toml)")
    run.set_defaults(func=_cmd_run)
    cfg = sub.add_parser("config", help="check a site file or print its JSON Schema")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a site file; exit 2 listing every problem")
    check.add_argument("file")
    check.set_defaults(func=_cmd_config_check)
    schema = cfg_sub.add_parser("schema", help="print the JSON Schema of site files")
    schema.set_defaults(func=_cmd_config_schema)
    doctor = sub.add_parser("doctor", help=say("cli.doctor.help"))
    doctor.add_argument("--config", default="/etc/edge-gateway/site.toml", help=say("cli.doctor.config"))
    doctor.add_argument("--unit", default="/etc/systemd/system/edge-gateway.service", help=say("cli.doctor.unit"))
    doctor.set_defaults(func=_cmd_doctor)
    warm = sub.add_parser("warm", help="compile the numba kernels into $NUMBA_CACHE_DIR (done at install)")
    warm.set_defaults(func=_cmd_warm)
    demo = sub.add_parser("demo", help="run the embedded demo site on 127.0.0.1")
    demo.add_argument("--port", type=int, default=8780, help="API port (0 picks a free one)")
    demo.add_argument("--state-dir", default=None, help="keep demo state here (default: a temporary folder)")
    demo.set_defaults(func=_cmd_demo)
    disc = sub.add_parser("discover", help=say("cli.discover.help"))
    disc.add_argument("--timeout", type=_seconds, default=3.0, help=say("cli.discover.timeout"))
    disc.add_argument("--config", action="store_true", help=say("cli.discover.config"))
    disc.set_defaults(func=_cmd_discover)
    ob = sub.add_parser("outbox", help="act on the durable outbox")
    ob_sub = ob.add_subparsers(dest="outbox_command", required=True)
    skip = ob_sub.add_parser(
        "skip", help="give up on the one event a push channel is stuck on (its receiver refuses it for good)"
    )
    skip.add_argument("--config", default="/etc/edge-gateway/site.toml", help="site TOML file")
    skip.add_argument("--consumer", required=True, choices=["webhook", "mqtt"], help="push channel")
    skip.add_argument("--seq", required=True, type=int, help="the event's sequence number, from the link's error")
    skip.set_defaults(func=_cmd_outbox_skip)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
