"""A real SSH server in the test process (paramiko's server side on loopback): public-key
authentication, `exec` requests run by the local /bin/sh, and direct-tcpip channels so it can
serve as a bastion. Real sockets, real handshakes and real host keys; only the host behind it
is this machine rather than a cluster host."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
from paramiko import common


class _Transport(paramiko.Transport):
    """paramiko's server transport, telling command threads when a channel request's reply is
    sent. sshd answers an exec request before its command can end and close the channel;
    paramiko's server lets a fast command's close overtake the reply, and the client then fails
    with "Channel closed." (seen under load)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._replies_lock = threading.Lock()
        self._replies: dict[int, threading.Event] = {}

    def replied(self, remote_chanid: int) -> threading.Event:
        with self._replies_lock:
            return self._replies.setdefault(remote_chanid, threading.Event())

    def _send_user_message(self, data: Any) -> None:
        super()._send_user_message(data)
        raw = data.asbytes()
        if raw[:1] in (common.cMSG_CHANNEL_SUCCESS, common.cMSG_CHANNEL_FAILURE):
            self.replied(int.from_bytes(raw[1:5], "big")).set()


class _Handler(paramiko.ServerInterface):
    def __init__(self, server: SshServer) -> None:
        self.server = server
        self.destinations: dict[int, tuple[str, int]] = {}

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.server.user and key == self.server.client_key:
            self.server.logins.append(username)
            return common.AUTH_SUCCESSFUL
        return common.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return common.OPEN_SUCCEEDED
        return common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        if not self.server.forwarding:
            return common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.destinations[chanid] = destination
        return common.OPEN_SUCCEEDED

    def check_channel_pty_request(self, *args: Any) -> bool:
        return True  # Ansible's raw module asks for one; commands run without it all the same

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=_execute, args=(channel, command), daemon=True).start()
        return True


def _execute(channel: paramiko.Channel, command: bytes) -> None:
    process = subprocess.Popen(
        ["/bin/sh", "-c", command.decode()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    assert process.stderr is not None
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr

    def feed() -> None:
        while data := channel.recv(4096):
            stdin.write(data)
            stdin.flush()
        stdin.close()

    def drain_stderr() -> None:
        while data := os.read(stderr.fileno(), 4096):
            channel.sendall_stderr(data)

    threads = [threading.Thread(target=f, daemon=True) for f in (feed, drain_stderr)]
    for thread in threads:
        thread.start()
    while data := os.read(stdout.fileno(), 4096):
        channel.sendall(data)
    threads[1].join()
    channel.send_exit_status(process.wait())
    transport = channel.get_transport()
    if isinstance(transport, _Transport):
        transport.replied(channel.remote_chanid).wait(10)
    channel.close()


def _pump(channel: paramiko.Channel, destination: tuple[str, int]) -> None:
    with socket.create_connection(destination) as sock:

        def back() -> None:
            # The client may drop the tunnel mid-stream (a test's failure path): not an error.
            with contextlib.suppress(OSError):
                while data := sock.recv(65536):
                    channel.sendall(data)
            channel.close()

        threading.Thread(target=back, daemon=True).start()
        while data := channel.recv(65536):
            sock.sendall(data)


class SshServer:
    def __init__(self, client_key: paramiko.PKey, user: str, address: str, forwarding: bool):
        self.host_key = paramiko.ECDSAKey.generate()
        self.client_key = client_key
        self.user = user
        self.forwarding = forwarding
        self.connections = 0  # transports accepted: how many SSH connections clients opened
        self.logins: list[str] = []
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((address, 0))
        self._sock.listen(16)
        self.address = address
        self.port: int = self._sock.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._server_thread = threading.Thread(target=self._serve, daemon=True)
        self._server_thread.start()

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[{self.address}]:{self.port} {key.get_name()} {key.get_base64()}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._session, args=(client,), daemon=True).start()

    def _session(self, client: socket.socket) -> None:
        transport = _Transport(client)
        self._transports.append(transport)
        transport.add_server_key(self.host_key)
        handler = _Handler(self)
        try:
            transport.start_server(server=handler)
        except (paramiko.SSHException, EOFError, OSError):
            return  # the client refused our key or went away: that is the test's point
        self.connections += 1
        # paramiko's transport holds its channels weakly, and a collected channel closes: each
        # stays referenced here until the connection ends, or a command that arrives later
        # than one accept poll finds its channel closed ("Channel closed." under load).
        channels: list[paramiko.Channel] = []
        while transport.is_active():
            channel: Any = transport.accept(0.5)
            if channel is None:
                continue
            channels.append(channel)
            destination = handler.destinations.pop(channel.get_id(), None)
            if destination is not None:
                threading.Thread(target=_pump, args=(channel, destination), daemon=True).start()

    def close(self) -> None:
        # Stop the accept loop before closing the socket: a thread about to call accept on a
        # closed descriptor number would accept on whatever socket reused it next (the next
        # test's server), answering that test's clients with this server's host key.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._server_thread.join(timeout=10)
        self._sock.close()
        for transport in self._transports:
            transport.close()


@contextmanager
def ssh_server(
    client_key: paramiko.PKey, user: str, address: str = "127.0.0.1", forwarding: bool = False
) -> Iterator[SshServer]:
    server = SshServer(client_key, user, address, forwarding)
    try:
        yield server
    finally:
        server.close()


def write_key(path: Path) -> paramiko.PKey:
    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(str(path))
    return key
