"""runtimes/media.py: one GNU OpenMP runtime per process for CTranslate2 (Whisper) and torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("share", [True, False])
def test_ctranslate2_binds_to_torchs_openmp_runtime_whatever_the_import_order(share: bool) -> None:
    """Imported before torch, CTranslate2 binds to its own bundled libgomp (two OpenMP runtimes in
    the server process) unless ``share_openmp_with_torch`` ran first; the dynamic loader tells."""
    pytest.importorskip("ctranslate2")
    pytest.importorskip("torch")
    code = "import ctranslate2"
    if share:
        code = "from modelhost.runtimes.media import share_openmp_with_torch as s; s(); " + code
    env = {**os.environ, "LD_BIND_NOW": "1", "LD_DEBUG": "bindings"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    bindings = [
        line for line in out.stderr.splitlines() if "libctranslate2" in line and "`GOMP_parallel'" in line
    ]
    assert bindings, "no GOMP_parallel binding of libctranslate2 seen"
    assert all(("torch/lib/libgomp.so.1" in line) is share for line in bindings), bindings
