"""`pods/log` with the query parameters kubectl sends: `container`, `follow`, `previous`, `tailLines`,
`sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`. The options are decided by a pure function; the
handler streams what the driver gives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from meshd.api import status as api_status
from meshd.api.exec import TRUE, worker_of
from meshd.api.podcontainer import container_name
from meshd.api.timefmt import parse_time
from meshd.controller.loop import Controller


@dataclass(frozen=True)
class LogOptions:
    container: str | None = None
    follow: bool = False
    previous: bool = False
    tail: int | None = None
    since: float | None = None  # unix time
    timestamps: bool = False
    limit_bytes: int | None = None


def _count(query: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: invalid value {raw!r}: must be an integer") from None
    if value < minimum:
        raise ValueError(f"{name}: invalid value {value}: must be greater than or equal to {minimum}")
    return value


def log_options(query: Mapping[str, str], *, now: float) -> LogOptions:
    """The request's options, checked as the API server checks them; a bad one is a ValueError (400)."""
    since_seconds = _count(query, "sinceSeconds", minimum=1)
    since_time = query.get("sinceTime")
    if since_seconds is not None and since_time:
        raise ValueError("at most one of sinceTime or sinceSeconds may be specified")
    since = now - since_seconds if since_seconds is not None else None
    if since_time:
        parsed = parse_time(since_time)
        if parsed is None:
            raise ValueError(f"sinceTime: invalid value {since_time!r}: must be an RFC 3339 time")
        since = parsed.timestamp()
    previous = query.get("previous") in TRUE
    return LogOptions(container=query.get("container") or None, follow=query.get("follow") in TRUE and not previous,
                      previous=previous, tail=_count(query, "tailLines", minimum=0), since=since,
                      timestamps=query.get("timestamps") in TRUE, limit_bytes=_count(query, "limitBytes", minimum=1))


def clip(chunk: bytes, sent: int, limit: int | None) -> bytes:
    """What of `chunk` may still go out after `sent` bytes under `limit`."""
    return chunk if limit is None else chunk[:max(0, limit - sent)]


def add_routes(router: web.UrlDispatcher, controller: Controller) -> None:
    async def logs(request: web.Request) -> web.StreamResponse:
        worker = worker_of(controller, request)
        options = log_options(request.query, now=time.time())
        name = container_name(worker, options.container)
        status = worker.containers[name]
        container_id = status.previous_id if options.previous else status.id
        if options.previous and not container_id:
            return api_status.response(
                400, f'previous terminated container "{name}" in pod "{worker.name}" not found')
        if not container_id:
            return api_status.response(
                400, f'container "{name}" in pod "{worker.name}" is waiting to start: {status.reason}')
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        sent = 0
        try:
            async for chunk in controller.driver.logs(container_id, follow=options.follow, tail=options.tail,
                                                      since=options.since, timestamps=options.timestamps):
                part = clip(chunk, sent, options.limit_bytes)
                if part:
                    await response.write(part)
                    sent += len(part)
                if options.limit_bytes is not None and sent >= options.limit_bytes:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", logs)

