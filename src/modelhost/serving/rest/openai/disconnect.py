"""Cancel a request's work when its client goes away before the answer is ready.

Uvicorn does not cancel a handler when the client disconnects; a non-streamed generation would run to
``max_tokens`` for nobody. Streams need nothing: Starlette stops iterating them on disconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from modelhost.errors import ModelhostError

T = TypeVar("T")


class ClientDisconnected(ModelhostError):
    """The client went away; the answer (rendered by the error handler) reaches nobody."""

    status_code = 499  # nginx's "client closed request"
    code = "client_closed_request"


async def cancel_on_disconnect(request: Request | None, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``, cancelling it (and so the upstream request) when the client disconnects first."""
    task = asyncio.ensure_future(work)
    if request is None:
        return await task

    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if gone:
            raise ClientDisconnected("the client disconnected before the answer was ready") from None
        task.cancel()
        raise
    finally:
        watcher.cancel()
