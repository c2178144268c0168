"""A runtime for worker-process tests: it exits the process when asked to (input value 666)."""

import os
from collections.abc import Sequence

import numpy as np

from modelhost.runtimes.base import Runtime


class CrashyRuntime(Runtime):
    name = "crashy"

    def load(self) -> None:
        self.pid = os.getpid()

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        if (x == 666).any():
            os._exit(3)
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x + 1, "pid": np.full((len(x),), self.pid, dtype=np.int64)}
