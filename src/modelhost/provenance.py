"""Where a model came from: the code version recorded in every registered version's lineage."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_version() -> str:
    """The git commit of the modelhost checkout (or 'unknown' outside one)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
