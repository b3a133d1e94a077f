"""cdnstore: one service in front of a fleet of geo-distributed S3 servers."""

__version__ = "0.1.0"
