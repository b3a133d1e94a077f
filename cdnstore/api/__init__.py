"""The HTTP API: thin handlers that parse a request, call one use case and serialise the result."""
