"""A real NATS JetStream cluster on loopback: Debian's nats-server, one process per node.

Each node has its own client port, route port, MQTT listener and JetStream store, all kept across
restarts, so a node killed and started again rejoins with its data like a real one would.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._peers import free_port

__all__ = ["NatsCluster", "NatsNode", "nats_server_binary"]


def nats_server_binary() -> str | None:
    return shutil.which("nats-server") or ("/usr/bin/nats-server" if Path("/usr/bin/nats-server").exists() else None)


@dataclass
class NatsNode:
    name: str
    port: int
    route_port: int
    mqtt_port: int
    store: Path
    conf: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


_PORT_TRIES = 3


class NatsCluster:
    """``size`` nodes in one cluster named 'county', JetStream and an MQTT listener on each."""

    def __init__(self, workdir: Path, size: int = 3, *, binary: str | None = None, no_advertise: bool = False) -> None:
        found = binary or nats_server_binary()
        if found is None:
            raise RuntimeError("nats-server is not installed: apt install nats-server (scripts/test does)")
        self.binary = found
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.no_advertise = no_advertise
        self.nodes = [
            NatsNode(f"n{i + 1}", 0, 0, 0, workdir / f"n{i + 1}", workdir / f"n{i + 1}.conf") for i in range(size)
        ]
        self._configure()

    def _configure(self) -> None:
        """Free ports for every node, and each node's config file naming the others' routes."""
        for node in self.nodes:
            node.port, node.route_port, node.mqtt_port = free_port(), free_port(), free_port()
        for node in self.nodes:
            routes = ", ".join(f"nats-route://127.0.0.1:{o.route_port}" for o in self.nodes if o is not node)
            node.conf.write_text(
                f"server_name: {node.name}\n"
                f"listen: 127.0.0.1:{node.port}\n"
                "jetstream { store_dir: " + f'"{node.store}"' + ", max_memory_store: 64MB, max_file_store: 2GB }\n"
                f"cluster {{ name: county, listen: 127.0.0.1:{node.route_port}, routes: [{routes}]"
                # no_advertise: clients learn no other node's address, so that a box whose seeds are
                # proxies (the bench's cut uplink) cannot route around them.
                 + (", no_advertise: true" if self.no_advertise else "") + " }\n"
                f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port} }}\n"
            )

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def start(self, node: NatsNode | None = None) -> None:
        """Start one node (or all) and wait until its client port takes connections."""
        for n in [node] if node is not None else self.nodes:
            if n.running:
                continue
            log = (self.workdir / f"{n.name}.log").open("ab")
            n.proc = subprocess.Popen(
                [self.binary, "-c", str(n.conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            log.close()
        for n in [node] if node is not None else self.nodes:
            _wait_port(n.port, n)

    def kill(self, node: NatsNode) -> None:
        """SIGKILL: what a power cut or an OOM kill does to a node."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(10)
        node.proc = None

    def stop(self, node: NatsNode | None = None) -> None:
        for n in [node] if node is not None else self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.terminate()
                try:
                    n.proc.wait(10)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait(5)
            n.proc = None

    def __enter__(self) -> NatsCluster:
        # A port found free can be taken before the node binds it (two test workers, or anything
        # else on the box, picking ports at once): then the whole cluster gets fresh ports, the
        # routes naming each other's, at most _PORT_TRIES times.
        for _ in range(_PORT_TRIES - 1):
            try:
                self.start()
                return self
            except RuntimeError:
                self.stop()
                logs = [self.workdir / f"{n.name}.log" for n in self.nodes]
                if not any(b"address already in use" in log.read_bytes() for log in logs if log.exists()):
                    raise
                for n, log in zip(self.nodes, logs, strict=True):
                    log.unlink(missing_ok=True)
                    shutil.rmtree(n.store, ignore_errors=True)  # a first start's cluster state, of the old routes
                self._configure()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_port(port: int, node: NatsNode, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc is not None and node.proc.poll() is not None:
            raise RuntimeError(f"nats-server {node.name} exited with {node.proc.returncode}; see its log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server {node.name} did not listen on {port} within {timeout:.0f} s")
