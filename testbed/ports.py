"""Loopback ports for the beds and the daemons they run beside."""

from __future__ import annotations

import socket


def unused_port() -> int:
    """A loopback port that nothing listens on (right now: the kernel's pick, for one listener)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1 and on all interfaces. Go's servers (weed) probe `:port`
    before binding 127.0.0.1, hence both; SO_REUSEADDR mirrors Go's listeners: a port in TIME_WAIT is usable."""
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True
