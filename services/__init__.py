"""gRPC services: the CLIP encoder service and the query service (plus their typed clients)."""
