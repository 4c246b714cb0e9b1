"""The TCP socket under a direct SSH connection, set up for many small request and reply
packets. Without this, against OpenSSH (measured from inside the lab's network), the handshake
took about 40 ms longer and every command waited about 40 ms more, where Nagle's algorithm met
delayed ACKs:

- paramiko sends small packets in a row (such as the close of one channel and the open of the
  next), and our kernel held the second until the first was acknowledged, which the host did
  late, having nothing to send yet (TCP_NODELAY on our side);
- sshd sends its host keys notice (hostkeys-00@openssh.com, which wants no answer) right after
  authentication and, before it turns TCP_NODELAY on for the session, holds its answer to our
  first channel open until we acknowledge that notice, which our kernel delays for having
  nothing to send (TCP_QUICKACK after each read; Linux clears it on its own, so it is set
  again every time).

Connections through a ProxyCommand or a bastion's channel have no socket of ours to set."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import paramiko

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _QuickAckSocket:
    """A connected socket that asks the kernel to acknowledge at once after every read."""

    def __init__(self, sock: socket.socket, option: int) -> None:
        self._sock = sock
        self._option = option

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        # A socket closed meanwhile (the transport shutting down) has nothing left to ACK.
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, self._option, 1)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """paramiko's transport_factory: a Transport over `sock`, a TCP socket set as above."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _QUICKACK is not None:
            sock = _QuickAckSocket(sock, _QUICKACK)
    return paramiko.Transport(sock, **kwargs)
