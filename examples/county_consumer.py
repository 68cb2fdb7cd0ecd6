"""The county platform's side of the NATS uplink: a durable JetStream pull consumer.

    python -m examples.county_consumer --servers nats://10.1.0.11:4222,nats://10.1.0.12:4222 --create

It reads every box's events from the stream, acknowledges each one after handling it, and every
few seconds prints one line per box: online or dark, what the box still holds (its presence
record says how far it has published), what the stream holds that this consumer has not read
yet, and how old the newest event is. Copy it, and put the platform's own handling in
:meth:`CountyConsumer.handle`.

Exactly once, on this side: the stream has already dropped re-sent copies within its
de-duplication window, and each box's ``Edge-Seq`` header rises by one per event, so a handler that
stores the highest ``Edge-Seq`` per box in the same transaction as the event can drop anything at
or below it (a redelivery after a consumer crash between handling and ack). Order per box is the
stream's order: one box publishes one event at a time.

``--create`` makes the stream (replicated three times, file storage, a de-duplication window and a
retention age) and the presence bucket if they do not exist; a platform usually does this once,
from its own deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.client import JetStreamContext

__all__ = ["BoxState", "CountyConsumer", "ensure_stream", "main"]

log = logging.getLogger("county_consumer")

DEDUP_WINDOW_S = 600.0
"""Ten minutes: longer than any retry of one publish (a leader election takes seconds, a box's
reconnect backoff is capped at a minute or so), short enough that the id table stays small (about
100 bytes an id: 200 boxes at one event a second hold 12 MB). A box down for longer finds its own
last event in the stream when it reconnects (gateway/upstream_nats.py), so it needs no longer window."""
MAX_AGE_S = 30 * 86400.0
"""A month: the platform's own database is the record; the stream only has to outlast the longest
time the platform's consumer may be down or be replaying."""


@dataclass
class BoxState:
    """What the platform knows of one box."""

    box: str
    last_seq: int = 0
    received: int = 0
    last_event_at: float = 0.0
    stream_seq: int = 0
    presence: dict[str, object] = field(default_factory=dict)


async def ensure_stream(
    js: JetStreamContext,
    *,
    stream: str,
    subjects: list[str],
    replicas: int = 3,
    presence_bucket: str | None = "presence",
    attempts: int = 60,
) -> None:
    """Create the stream and the presence bucket when they are missing (a fresh cluster may need a
    few seconds to elect its meta leader, so this retries, a bounded number of times)."""
    for attempt in range(attempts):
        try:
            try:
                await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(
                    StreamConfig(
                        name=stream,
                        subjects=subjects,
                        num_replicas=replicas,
                        storage=StorageType.FILE,
                        duplicate_window=DEDUP_WINDOW_S,
                        max_age=MAX_AGE_S,
                    )
                )
            if presence_bucket is not None:
                try:
                    await js.key_value(presence_bucket)
                except nats.js.errors.BucketNotFoundError:
                    await js.create_key_value(KeyValueConfig(bucket=presence_bucket, history=1, replicas=replicas))
            return
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError, nats.js.errors.APIError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)


class CountyConsumer:
    """Pulls every box's events through one durable consumer and keeps per-box state."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        subjects: str,
        durable: str,
        presence_bucket: str | None = "presence",
        handle: Callable[[Msg, BoxState], Awaitable[None]] | None = None,
    ) -> None:
        self._js = js
        self.stream = stream
        self.subjects = subjects
        self.durable = durable
        self.presence_bucket = presence_bucket
        self.boxes: dict[str, BoxState] = {}
        self._handle = handle

    @staticmethod
    def box_of(subject: str) -> str:
        """'<prefix...>.<township>.<box>.<category>' -> '<township>.<box>'."""
        parts = subject.split(".")
        return ".".join(parts[-3:-1])

    async def handle(self, msg: Msg, box: BoxState) -> None:
        """The platform's work on one event; here, only a check of per-box order."""
        if self._handle is not None:
            await self._handle(msg, box)

    async def run(self, stop: asyncio.Event, batch: int = 256) -> None:
        """Fetch, handle and ack until ``stop`` is set; survives the cluster going away and back."""
        sub = None
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await self._js.pull_subscribe(
                        self.subjects,
                        durable=self.durable,
                        stream=self.stream,
                        config=ConsumerConfig(
                            ack_policy=AckPolicy.EXPLICIT,
                            deliver_policy=DeliverPolicy.ALL,
                            ack_wait=30.0,
                            max_ack_pending=20_000,
                        ),
                    )
                msgs = await sub.fetch(batch, timeout=1.0)
            except TimeoutError:  # nothing new within the second (nats-py raises its own or asyncio's)
                continue
            except (nats.errors.Error, OSError) as exc:
                log.warning("fetch: %s: %s; retrying", type(exc).__name__, exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self._one(msg)

    async def _one(self, msg: Msg) -> None:
        box = self.boxes.setdefault(self.box_of(msg.subject), BoxState(self.box_of(msg.subject)))
        await self.handle(msg, box)
        headers = msg.headers or {}
        with contextlib.suppress(ValueError):
            box.last_seq = max(box.last_seq, int(headers.get("Edge-Seq", "0")))
        box.received += 1
        box.last_event_at = time.time()
        box.stream_seq = msg.metadata.sequence.stream
        # Acked after handling: a crash in between means a redelivery, never a loss.
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()

    async def lag(self) -> list[tuple[str, str, int | None, int | None, float | None]]:
        """Per box: (box, presence, events the box still holds, events the stream holds unread, age of
        the newest event read, in s). None where it is not known."""
        presence: dict[str, dict[str, object]] = {}
        if self.presence_bucket is not None:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                kv = await self._js.key_value(self.presence_bucket)
                for key in await kv.keys():
                    entry = await kv.get(key)
                    if entry.value:
                        presence[key] = json.loads(entry.value)
        now = time.time()
        rows = []
        prefix = self.subjects.removesuffix(">")
        for name in sorted(set(self.boxes) | set(presence)):
            box = self.boxes.get(name) or BoxState(name)
            rec = presence.get(name, {})
            state = str(rec.get("state", "unknown"))
            at, beat = rec.get("at"), rec.get("heartbeat_s")
            if state == "online" and isinstance(at, float) and isinstance(beat, float) and now - at > 3 * beat:
                state = "dark"
            held = None
            committed, cursor = rec.get("committed"), rec.get("cursor")
            if isinstance(committed, int) and isinstance(cursor, int):
                held = committed - cursor
            unread = None
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                last = await self._js.get_last_msg(self.stream, f"{prefix}{name}.>")
                unread = max(0, int((last.headers or {}).get("Edge-Seq", "0")) - box.last_seq)
            age = now - box.last_event_at if box.last_event_at else None
            rows.append((name, state, held, unread, age))
        return rows


def _print_lag(rows: list[tuple[str, str, int | None, int | None, float | None]]) -> None:
    print(f"{'box':<32} {'presence':<8} {'on box':>7} {'unread':>7} {'newest':>8}")
    for name, state, held, unread, age in rows:
        print(
            f"{name:<32} {state:<8} {'?' if held is None else held:>7} {'?' if unread is None else unread:>7} "
            f"{'-' if age is None else f'{age:.0f} s':>8}"
        )


async def _main(args: argparse.Namespace) -> int:
    nc = await nats.connect(servers=args.servers.split(","), name="county-consumer", max_reconnect_attempts=-1)
    js = nc.jetstream()
    if args.create:
        await ensure_stream(js, stream=args.stream, subjects=[args.subjects], replicas=args.replicas)
    consumer = CountyConsumer(js, stream=args.stream, subjects=args.subjects, durable=args.durable)
    stop = asyncio.Event()
    reader = asyncio.create_task(consumer.run(stop), name="county.consumer")
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(args.every)
            _print_lag(await consumer.lag())
    finally:
        stop.set()
        await reader
        await nc.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="nats://127.0.0.1:4222", help="comma-separated seed servers")
    p.add_argument("--stream", default="INCIDENTS")
    p.add_argument("--subjects", default="township.>", help="subjects of the stream and of the consumer")
    p.add_argument("--durable", default="county-platform", help="durable consumer name")
    p.add_argument("--create", action="store_true", help="create the stream and presence bucket if missing")
    p.add_argument("--replicas", type=int, default=3, choices=[1, 3, 5])
    p.add_argument("--every", type=float, default=5.0, help="seconds between lag tables")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: run until Ctrl-C)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_main(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
