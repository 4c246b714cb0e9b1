"""Run commands on cluster hosts over SSH (fabric/paramiko), all hosts in parallel, with
explicit timeouts, honouring the inventory's connection settings: user, port, key, become,
ProxyCommand/ProxyJump and UserKnownHostsFile from ansible_ssh_common_args.

Host keys are checked: unknown or changed keys are refused, never added."""

from __future__ import annotations

import logging
import os
import select
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from k8s_provision.model import ConnectionSettings, Host
from k8s_provision.ssh_args import expand_tokens, parse_ssh_args

# paramiko logs every failed handshake with a traceback; failures are reported per host instead.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
BECOME_PASSWORD_ENV = "K8SP_BECOME_PASSWORD"  # noqa: S105 -- the variable name, not a secret


_become_password: str | None = None


def set_become_password(password: str | None) -> None:
    """A sudo password typed at a prompt; otherwise sessions read BECOME_PASSWORD_ENV."""
    global _become_password  # noqa: PLW0603 -- one process-wide secret, never written anywhere
    _become_password = password


def become_password() -> str | None:
    return _become_password if _become_password is not None else os.environ.get(BECOME_PASSWORD_ENV)


@dataclass(frozen=True)
class Result:
    """One command on one host. `error` is set when the command could not run at all
    (unreachable, authentication, host key, timeout); then exit_code is None."""

    host: str
    command: str
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_code == 0


def _describe_failure(host: Host, err: BaseException) -> str:
    """One sentence an operator can act on, per kind of SSH failure."""
    where = f"{host.address}:{host.connection.port or 22}"
    if isinstance(err, paramiko.BadHostKeyException):
        return (
            f"host key of {where} changed (possible man-in-the-middle, or a reinstalled host);"
            f" if expected, remove the old key: ssh-keygen -R {host.address}"
        )
    if isinstance(err, paramiko.SSHException) and "not found in known_hosts" in str(err):
        return (
            f"host key of {where} is unknown; verify it and add it to known_hosts"
            f" (ssh-keyscan -p {host.connection.port or 22} {host.address} >> ~/.ssh/known_hosts)"
        )
    if isinstance(err, paramiko.ProxyCommandFailure):
        return f"cannot reach {where} through the ProxyCommand: {err.error}"
    if isinstance(err, paramiko.AuthenticationException):
        return f"SSH authentication failed for {host.connection.user or 'root'}@{where}: {err}"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve host name {host.address}"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"timed out connecting to {where}"
    if isinstance(err, (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError)):
        return f"connection refused by {where} (is sshd running?)"
    if isinstance(err, (OSError, EOFError, paramiko.SSHException)):
        text = str(err) or type(err).__name__
        return f"cannot reach {where}: {text}"
    return f"{type(err).__name__}: {err}"


class HostSession:
    """An SSH connection to one host, opened on first use."""

    def __init__(self, host: Host, timeout: float = CONNECT_TIMEOUT) -> None:
        self.host = host
        self.timeout = timeout
        self._client: paramiko.SSHClient | None = None
        self._sock: Any = None
        self._jump: HostSession | None = None

    def _connect(self) -> paramiko.SSHClient:
        if self._client is not None:
            return self._client
        conn = self.host.connection
        options = parse_ssh_args(conn.ssh_common_args, conn.ssh_extra_args)
        user = conn.user or "root"
        port = conn.port or 22
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        for path in options.known_hosts_files:
            if Path(path).is_file():
                client.load_host_keys(path)
        # Host key checking stays on unless the inventory itself turns it off.
        client.set_missing_host_key_policy(
            paramiko.RejectPolicy()
            if options.strict_host_key_checking
            else paramiko.WarningPolicy()
        )
        sock: Any = None
        if options.proxy_command and options.proxy_command.lower() != "none":
            proxy = expand_tokens(options.proxy_command, self.host.address, port, user)
            sock = _ProxyCommand(proxy)
        elif options.proxy_jump:
            sock = self._channel_through(_jump_host(options.proxy_jump, self.host), port)
        elif conn.via is not None:
            sock = self._channel_through(conn.via, port)
        keys = [conn.private_key_file] if conn.private_key_file else []
        keys += list(options.identity_files)
        try:
            client.connect(
                self.host.address,
                port=port,
                username=user,
                key_filename=[os.path.expanduser(k) for k in keys] or None,  # type: ignore[arg-type]
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                sock=sock,
                allow_agent=True,
                look_for_keys=not keys,
            )
        except paramiko.SSHException as err:
            # Through a ProxyCommand paramiko only sees "no banner"; the proxy's stderr says why.
            failure = _proxy_failure(sock)
            if failure is None:
                raise
            raise paramiko.ProxyCommandFailure(" ".join(sock.cmd), failure) from err
        self._client, self._sock = client, sock
        return client

    def _channel_through(self, jump: Host, port: int) -> Any:
        """A TCP channel to this host opened from an SSH session on `jump`."""
        self._jump = HostSession(jump, self.timeout)
        transport = self._jump._connect().get_transport()
        if transport is None:
            raise paramiko.SSHException(f"jump host {jump.address} closed the connection")
        return transport.open_channel(
            "direct-tcpip", (self.host.address, port), ("127.0.0.1", 0), timeout=self.timeout
        )

    def run(
        self, command: str, timeout: float = COMMAND_TIMEOUT, sudo: bool | None = None
    ) -> Result:
        wrapped = self._wrap(command, sudo)
        try:
            client = self._connect()
            stdin, stdout, stderr = client.exec_command(wrapped, timeout=timeout)
            password = become_password()
            if wrapped.startswith("sudo -S") and password is not None:
                stdin.write(password + "\n")
                stdin.flush()
            stdin.channel.shutdown_write()
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            code = stdout.channel.recv_exit_status()
        except Exception as exc:  # every failure becomes a per-host result, never a crash
            return Result(self.host.name, command, None, error=_describe_failure(self.host, exc))
        return Result(self.host.name, command, code, out, err)

    def _wrap(self, command: str, sudo: bool | None) -> str:
        conn = self.host.connection
        needs = sudo if sudo is not None else (conn.become and (conn.user or "root") != "root")
        if not needs:
            return command
        prompt = "-S -p ''" if become_password() is not None else "-n"
        target = f"-u {shlex.quote(conn.become_user)} " if conn.become_user else ""
        return f"sudo {prompt} {target}sh -c {shlex.quote(command)}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._jump is not None:
            self._jump.close()
        if self._sock is not None and hasattr(self._sock, "close"):
            self._sock.close()
        self._client = self._sock = self._jump = None


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand spins on a closed pipe until its timeout when the command has
    exited (an unreachable host). Here end of file returns what was read, b"" at the end, which
    paramiko takes as a closed connection."""

    def recv(self, size: int) -> bytes:
        stdout = self.process.stdout
        assert stdout is not None  # started with stdout=PIPE
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        buffer = b""
        while len(buffer) < size:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if buffer:
                    return buffer
                raise TimeoutError("the ProxyCommand sent nothing in time")
            if not select.select([stdout], [], [], remaining)[0]:
                continue
            chunk = os.read(stdout.fileno(), size - len(buffer))
            if not chunk:
                return buffer
            buffer += chunk
        return buffer


def _proxy_failure(sock: Any) -> str | None:
    """The last line a ProxyCommand wrote to stderr, if it wrote one. Read without waiting and
    without reaping the process: paramiko still signals it when the transport closes."""
    if not isinstance(sock, paramiko.ProxyCommand) or sock.process.stderr is None:
        return None
    stderr = sock.process.stderr
    if not select.select([stderr], [], [], 0)[0]:
        return None
    lines = os.read(stderr.fileno(), 65536).decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else None


def _jump_host(spec: str, target: Host) -> Host:
    """The host of a ProxyJump spec ([user@]host[:port]), with the target's key and known_hosts
    files so its key is checked the same way."""
    user, _, rest = spec.rpartition("@")
    address, _, port = rest.partition(":")
    known = parse_ssh_args(target.connection.ssh_common_args).known_hosts_files
    return Host(
        name=f"jump:{address}",
        address=address,
        ip=address,
        roles=frozenset(),
        kube_node_name="",
        flannel_iface="",
        connection=ConnectionSettings(
            user=user or target.connection.user,
            port=int(port) if port.isdigit() else None,
            private_key_file=target.connection.private_key_file,
            ssh_common_args=" ".join(f"-o UserKnownHostsFile={shlex.quote(k)}" for k in known)
            or None,
        ),
    )


def on_hosts(
    hosts: list[Host],
    work: Callable[[HostSession], Any],
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Open one session per host and call `work(session)` on every host in parallel. Returns
    {host name: work's result}; sessions are closed afterwards."""
    if not hosts:
        return {}

    def one(host: Host) -> Any:
        session = HostSession(host, timeout)
        try:
            return work(session)
        finally:
            session.close()

    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        results = list(pool.map(one, hosts))
    return {host.name: result for host, result in zip(hosts, results, strict=True)}


def run_on_hosts(
    hosts: list[Host],
    command: str | Mapping[str, str],
    *,
    timeout: float = COMMAND_TIMEOUT,
) -> dict[str, Result]:
    """Run one command (or one per host name) on every host in parallel."""

    def work(session: HostSession) -> Result:
        text = command if isinstance(command, str) else command[session.host.name]
        return session.run(text, timeout=timeout)

    return on_hosts(hosts, work)
