"""sd_notify against a real AF_UNIX datagram socket, path and abstract ('@') forms."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.notify import Notifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


@pytest.fixture(autouse=True)
def close_notifiers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Notifier keeps its socket for the life of the daemon (it has no close); tests close theirs."""
    made: list[Notifier] = []
    real_init = Notifier.__init__

    def init(self: Notifier, socket_path: str | None = None) -> None:
        real_init(self, socket_path)
        made.append(self)

    monkeypatch.setattr(Notifier, "__init__", init)
    yield
    for n in made:
        if n._sock is not None:
            n._sock.close()


def recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_messages_over_a_path_socket(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    n = Notifier(path)
    assert n.enabled
    n.ready("2/2 links up")
    assert recv(sock) == ["READY=1", "STATUS=2/2 links up"]
    n.status("1/2 links up, 3 open incidents")
    assert recv(sock) == ["STATUS=1/2 links up, 3 open incidents"]
    n.watchdog()
    assert recv(sock) == ["WATCHDOG=1"]
    n.stopping()
    assert recv(sock) == ["STOPPING=1", "STATUS=stopping"]


def test_status_is_utf8(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    Notifier(path).status("新山村 ok")
    assert recv(sock) == ["STATUS=新山村 ok"]


def test_abstract_socket_form() -> None:
    name = f"edge-gw-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("\0" + name)
        sock.settimeout(2)
        n = Notifier("@" + name)
        assert n.enabled
        n.watchdog()
        assert recv(sock) == ["WATCHDOG=1"]
    finally:
        sock.close()


def test_reads_notify_socket_from_the_environment(
    receiver: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier().ready("up")
    assert recv(sock)[0] == "READY=1"


def test_disabled_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    n.ready("x")  # no-op, no error
    n.watchdog()
    assert not Notifier("").enabled


def test_best_effort_when_systemd_is_gone(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "missing.sock"))
    assert n.enabled
    n.ready("x")  # ENOENT / ECONNREFUSED are swallowed
    n.stopping()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("20000000", None, 10.0),
        ("3000000", "self", 1.5),
        ("3000000", "1", None),  # meant for another process
        (None, None, None),
        ("abc", None, None),
        ("", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert Notifier.watchdog_interval_s() == expected
