"""What-if launcher: ``modelhost serve`` with the two fixes the serving profile points at, patched in
at start-up (src/ is left alone), so the gain can be measured before anyone changes src/.

1. ``async_deps``: FastAPI runs a plain ``def`` dependency in its thread pool, so ``get_plane`` costs
   one thread hop per request; an ``async def`` dependency runs on the event loop.
2. ``inline_predict``: the batcher sends every batch to a worker thread; for a model that answers in
   microseconds (iris) the hop costs more than the model, so run it on the event loop instead.

    MODELHOST_HOME=... python what_if_serve.py PORT [async_deps] [inline_predict]
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request


def main() -> None:
    port, fixes = int(sys.argv[1]), set(sys.argv[2:])
    import modelhost.serving.deps as deps

    if "async_deps" in fixes:
        # Must happen before the route modules are imported: FastAPI reads dependencies at decoration.
        async def get_plane(request: Request) -> Any:
            return request.app.state.plane

        depends = deps.Plane.__metadata__[0]
        object.__setattr__(depends, "dependency", get_plane)
    if "inline_predict" in fixes:
        import modelhost.dataplane.batching as batching

        async def run_inline(fn: Any, *args: Any) -> Any:
            return fn(*args)

        batching.anyio = SimpleNamespace(to_thread=SimpleNamespace(run_sync=run_inline))  # type: ignore[attr-defined]

    import uvicorn

    from modelhost.config import Settings
    from modelhost.serving.app import create_app

    s = Settings()
    uvicorn.run(create_app(s), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
