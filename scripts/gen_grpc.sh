#!/usr/bin/env sh
# Regenerates the Python protobuf module (and its .pyi type stubs) of the OIP v2 gRPC service
# from src/modelhost/serving/grpc/protos/*.proto. Needs grpcio-tools (the dev extra).
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src \
  src/modelhost/serving/grpc/protos/oip_v2.proto
echo "generated src/modelhost/serving/grpc/protos/oip_v2_pb2.py{,i}"
