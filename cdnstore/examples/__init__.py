"""Small scripts that use cdnstore's HTTP API, shipped as examples (run them with `python -m`)."""
