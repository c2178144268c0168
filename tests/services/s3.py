"""A local S3-compatible server for tests: moto's, in a thread, on a free port."""

from __future__ import annotations

import socket
from typing import Any


def unavailable_reason() -> str | None:
    """Why the S3 tests cannot run here, or None if they can."""
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (extra 'scale': moto[server], s3fs)"
    return None


class S3Server:
    """moto's S3 on 127.0.0.1; point clients at it with ``AWS_ENDPOINT_URL`` (boto's own variable)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
