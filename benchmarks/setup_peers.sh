#!/usr/bin/env bash
# Creates one virtualenv per peer framework under benchmarks/.venvs (ignored by git), all from PyPI.
# Idempotent: a venv whose stamp file exists is left alone. Usage: bash benchmarks/setup_peers.sh [peer...]
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENVS=.venvs
mkdir -p "$VENVS"

declare -A PKGS=(
  [fastapi]="fastapi uvicorn[standard] onnxruntime numpy orjson"
  [litserve]="litserve onnxruntime numpy"
  [bentoml]="bentoml onnxruntime numpy"
  # uvloop 0.22+ breaks MLServer 1.7's inference-pool workers (asyncio.get_event_loop() raises)
  [mlserver]="mlserver onnxruntime numpy uvloop<0.22"
  [loadgen]="aiohttp numpy py-spy"
  # llama.cpp's OpenAI server, built from source (5-15 min on 2 cores); GGML_NATIVE=OFF keeps the
  # binary portable (no -march=native), the same CPU features torch's wheel assumes
  [llamacpp]="llama-cpp-python[server]"
)
declare -A ENVS=(
  [llamacpp]="CMAKE_ARGS=-DGGML_NATIVE=OFF"
)
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(fastapi litserve bentoml mlserver loadgen)
for peer in "${peers[@]}"; do
  dir="$VENVS/$peer"
  if [ -f "$dir/.installed" ]; then echo "$peer: ready"; continue; fi
  echo "$peer: installing ${PKGS[$peer]}"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  # shellcheck disable=SC2086
  if env ${ENVS[$peer]:-} "$dir/bin/python" -m pip install -q --disable-pip-version-check ${PKGS[$peer]}; then
    touch "$dir/.installed"
  else
    echo "$peer: install FAILED (see the pip output above)" >&2
  fi
done
