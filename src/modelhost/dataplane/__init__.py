"""The data plane: loaded models and inference, with no knowledge of HTTP or gRPC."""
