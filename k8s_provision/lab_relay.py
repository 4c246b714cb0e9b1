"""Copy stdin/stdout to a TCP connection: the lab's SSH ProxyCommand.

The lab inventory runs `nsenter --net=/run/netns/<lab>-net <python> -m k8s_provision.lab_relay
%h %p`, so ssh, ansible and paramiko reach lab hosts from the machine's own network namespace
without a route to the lab subnet. A fresh machine has neither nc nor socat, hence this file.
It must stay importable without the rest of the package's dependencies: it starts per
connection.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys

_CHUNK = 65536


def relay(host: str, port: int) -> int:
    try:
        conn = socket.create_connection((host, port), timeout=10)
    except OSError as err:
        print(f"lab_relay: cannot connect to {host}:{port}: {err}", file=sys.stderr)
        return 1
    conn.settimeout(None)
    # Connected: release the caller's stderr. An ssh ControlPersist master keeps its proxy alive
    # for minutes, and a held stderr pipe would make the caller that started it wait for EOF.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    with conn, selectors.DefaultSelector() as selector:
        selector.register(0, selectors.EVENT_READ)
        selector.register(conn, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj == 0:
                    data = os.read(0, _CHUNK)
                    if not data:
                        # The client closed its side; let the server finish talking.
                        selector.unregister(0)
                        conn.shutdown(socket.SHUT_WR)
                        continue
                    conn.sendall(data)
                else:
                    data = conn.recv(_CHUNK)
                    if not data:
                        return 0
                    _write_all(1, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m k8s_provision.lab_relay HOST PORT", file=sys.stderr)
        return 2
    try:
        return relay(argv[0], int(argv[1]))
    except (BrokenPipeError, ConnectionResetError):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
