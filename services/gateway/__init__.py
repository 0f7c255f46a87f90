"""HTTP gateway: one search page and a small JSON API, backed by the query service over gRPC."""
