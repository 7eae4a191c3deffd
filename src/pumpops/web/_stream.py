"""``GET /api/events``: the live event stream (server-sent events) of alarms, state, rollout steps and alerts.

The stream polls the store (every ``ApiContext.stream_poll_s``): the lifecycle
events table (rollout steps, fleet drift alerts, alarm acknowledgements and
feedback, model and release events, retraining steps) by its sequence number,
and the agent messages (alarms; device states on request) by their receipt
time. Polling the store, not an in-process queue, means every hub process
(and every ingest worker behind it) feeds every stream: ingest may run
elsewhere. Each message carries an ``id`` (``e<seq>.a<received_us>``): a client
that reconnects with ``Last-Event-ID`` (browsers do) misses nothing. A comment
line every 15 s keeps proxies from closing a quiet stream.
May import: fastapi, starlette, store, this part.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from pumpops.errors import InputError
from pumpops.web._context import ApiContext, Ctx, Viewer

__all__ = ["format_event", "parse_cursor", "stream_router"]

stream_router = APIRouter(prefix="/api")

_CURSOR = re.compile(r"e(\d{1,18})\.a(\d{1,18})")
_KEEPALIVE_S = 15.0
_PAGE = 2000  # agent messages per poll


def parse_cursor(text: str) -> tuple[int, int]:
    """``(event seq, agent message received_us)`` of an event id ``e<seq>.a<received_us>``.

    >>> parse_cursor("e12.a1700000000000000")
    (12, 1700000000000000)

    Raises:
        InputError: not an id this stream sent.
    """
    match = _CURSOR.fullmatch(text.strip())
    if match is None:
        raise InputError(
            f"event id {text!r}: expected e<seq>.a<received_us>, as sent in the stream's 'id:' lines"
        )
    return int(match.group(1)), int(match.group(2))


def format_event(name: str, cursor: tuple[int, int], data: dict[str, Any]) -> str:
    r"""One server-sent event: ``id``, ``event`` and one ``data`` line of JSON.

    >>> format_event("alarm", (3, 5), {"a": 1})
    'id: e3.a5\nevent: alarm\ndata: {"a": 1}\n\n'
    """
    return f"id: e{cursor[0]}.a{cursor[1]}\nevent: {name}\ndata: {json.dumps(data, sort_keys=True)}\n\n"


def _start(context: ApiContext) -> tuple[int, int]:
    newest = context.store.events(limit=1)
    return (newest[-1].seq if newest else 0), context.clock_us()


def _poll(
    context: ApiContext, cursor: tuple[int, int], kinds: tuple[str, ...]
) -> list[tuple[str, tuple[int, int], dict[str, Any]]]:
    """What happened after ``cursor``, in order: stored events, then agent messages."""
    seq, received = cursor
    out: list[tuple[str, tuple[int, int], dict[str, Any]]] = []
    for event in context.store.events(since_seq=seq + 1):
        seq = event.seq
        data = {"kind": event.kind, "subject": event.subject, "time_us": event.time_us,
                "payload": json.loads(event.payload_json)}  # fmt: skip
        out.append((event.kind.split(".", 1)[0], (seq, received), data))
    rows = context.store.agent_messages_received(after_us=received, kinds=kinds, limit=_PAGE)
    if len(rows) == _PAGE and rows[0].received_at_us != rows[-1].received_at_us:
        # a batch shares one receipt time: leave the last time's rows whole for the next poll
        rows = [r for r in rows if r.received_at_us != rows[-1].received_at_us]
    for row in rows:
        received = int(row.received_at_us)
        try:
            body = json.loads(row.body)
        except ValueError:
            body = {}
        data = {"kind": row.kind, "device_id": row.device_id, "site": row.site, "msg_id": row.msg_id,
                "ts_us": int(row.ts_us), "received_at_us": received, "body": body}  # fmt: skip
        out.append((row.kind, (seq, received), data))
    return out


@stream_router.get(
    "/events",
    tags=["events"],
    summary="Live events (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def get_events(  # noqa: PLR0917 - one query parameter each
    request: Request,
    ctx: Ctx,
    _: Viewer,
    include: Annotated[
        list[Literal["alarm", "state"]] | None,
        Query(description="Agent messages to include besides stored events (default: alarm)."),
    ] = None,
    since: Annotated[str | None, Query(max_length=40, description="Resume after this event id.")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000, description="Close after this many.")] = None,
    max_seconds: Annotated[float | None, Query(gt=0, le=86_400, description="Close after this long.")] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    """Stored events (``rollout.*``, ``fleet.*``, ``alarm.*``, ``model.*``, ...) and alarms as they arrive.

    Each message: ``event:`` the kind's first word (``alarm``, ``state``,
    ``rollout``, ``fleet``, ``model``, ``release``, ``retrain``), ``data:`` JSON.
    """
    resume = since if since is not None else last_event_id
    cursor = parse_cursor(resume) if resume else await asyncio.to_thread(_start, ctx)
    kinds = tuple(sorted(set(include or ["alarm"])))

    async def body() -> AsyncIterator[str]:
        position = cursor
        sent = 0
        started = last_beat = time.monotonic()
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            for name, where, data in await asyncio.to_thread(_poll, ctx, position, kinds):
                position = where
                yield format_event(name, where, data)
                sent += 1
                last_beat = time.monotonic()
                if max_events is not None and sent >= max_events:
                    return
            now = time.monotonic()
            if max_seconds is not None and now - started >= max_seconds:
                return
            if now - last_beat >= _KEEPALIVE_S:
                last_beat = now
                yield ": keep-alive\n\n"
            await asyncio.sleep(ctx.stream_poll_s)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
