"""Protocol adapters (REST, later gRPC) over the data plane."""
