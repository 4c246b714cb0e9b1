"""Run commands on cluster hosts over SSH with fabric, all hosts in parallel, with explicit
timeouts. Settings come from the inventory and ssh_config as OpenSSH would take them (see
target.py); hosts behind one bastion share one connection to it. Host keys are always checked:
unknown, changed or revoked keys are refused (never fabric's default of adding them), unless
the operator named a file to accept new keys into."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import fabric
import paramiko

from k8s_provision.model import Host
from k8s_provision.ssh import tcp
from k8s_provision.ssh.failures import CommandTimeout, GatewayError, describe_failure
from k8s_provision.ssh.known_hosts import CheckingPolicy, KnownHosts
from k8s_provision.ssh.target import Lookup, Target, resolve
from k8s_provision.ssh_args import accept_new_file, expand_tokens

# paramiko logs every failed handshake with a traceback; failures are reported per host instead.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
WAKEUP_POLL = 0.05  # seconds; see _execute
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


# fabric ships no type hints, so mypy sees its Connection as Any.
class _Connection(fabric.Connection):  # type: ignore[misc]
    """fabric's Connection with the gateway opened our way: a ProxyCommand whose end of file
    ends the connection at once, and a shared gateway connection opened once for all hosts."""

    # Class-level defaults make these real attributes: fabric's Connection turns assignments
    # to unknown attributes into configuration entries.
    target: Target | None = None
    known: KnownHosts | None = None
    proxy: paramiko.ProxyCommand | None = None
    failure: BaseException | None = None
    open_lock: threading.Lock | None = None

    def open_gateway(self) -> Any:
        if isinstance(self.gateway, str):
            self.proxy = _ProxyCommand(
                expand_tokens(self.gateway, self.host, int(self.port), self.user)
            )
            return self.proxy
        gateway: _Connection = self.gateway
        gateway.open_shared()
        try:
            return gateway.transport.open_channel(
                "direct-tcpip",
                (self.host, int(self.port)),
                ("", 0),
                timeout=self.connect_timeout,
            )
        except paramiko.ChannelException as err:
            via = gateway.target.where if gateway.target is not None else "the bastion"
            raise paramiko.SSHException(
                f"{via} could not open a connection to it ({err.text})"
            ) from err

    def open_shared(self) -> None:
        """Open once for every host that tunnels through this connection. A failure is kept,
        so hosts behind an unreachable bastion fail at once rather than each waiting it out."""
        assert self.open_lock is not None  # set by Pool.connection
        with self.open_lock:
            if self.failure is not None:
                raise GatewayError(self, self.failure)
            try:
                _open(self)
            except Exception as err:
                self.failure = err
                raise GatewayError(self, err) from err


def _open(conn: _Connection) -> None:
    """conn.open(), with paramiko's vaguer failures made precise."""
    try:
        conn.open()
    except paramiko.SSHException as err:
        # Through a ProxyCommand paramiko only sees "no banner"; the proxy's stderr says why.
        failure = _proxy_failure(conn.proxy)
        if failure is not None:
            raise paramiko.ProxyCommandFailure(conn.gateway, failure) from err
        transport = conn.client.get_transport()
        handshake_done = transport is not None and transport.initial_kex_done
        # No banner in time (a relay still dialling a powered-off host) ends either in the
        # banner timeout or, when start_client's own timeout comes first, in "No existing
        # session" (whether or not the banner timeout ended the transport meanwhile); neither
        # is the host's answer.
        if (
            type(err) is paramiko.SSHException
            and not handshake_done
            and (
                str(err) == "No existing session"
                or (
                    str(err) == "Error reading SSH protocol banner"
                    and isinstance(err.__context__, TimeoutError)
                )
            )
        ):
            raise TimeoutError(f"no SSH handshake within {conn.connect_timeout} s") from err
        # When every key is refused, paramiko raises whatever its last attempt raised
        # (often "encountered EC key, expected OPENSSH key" from trying the file as another
        # key type); a live transport that is not authenticated says what happened.
        if (
            type(err) is paramiko.SSHException
            and transport is not None
            and transport.is_active()
            and not transport.is_authenticated()
        ):
            raise paramiko.AuthenticationException("no key was accepted") from err
        raise


class Pool:
    """What the sessions of one run share: ssh_config, known_hosts, gateway connections."""

    def __init__(self, timeout: float = CONNECT_TIMEOUT) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._configs: dict[str | None, fabric.Config] = {}
        self._known: dict[tuple[str, ...], KnownHosts] = {}
        self._gateways: dict[Target, _Connection] = {}

    def _config(self, config_file: str | None) -> fabric.Config:
        with self._lock:
            if config_file not in self._configs:
                # fabric reads ~/.ssh/config then /etc/ssh/ssh_config, or only a -F file.
                self._configs[config_file] = fabric.Config(runtime_ssh_path=config_file)
            return self._configs[config_file]

    def _private_config(self, config_file: str | None) -> fabric.Config:
        """A connection's own Config around the ssh_config parsed once per run: invoke's
        Config rebuilds its data in place when it merges, so connections made in parallel from
        one shared Config failed at random with "No attribute or config key found". A lazy
        Config costs 0.2 ms where a clone of the shared one cost 3 ms, under a lock, per host;
        it leaves out fabric's own config files, which no setting here comes from."""
        return fabric.Config(ssh_config=self._config(config_file).base_ssh_config, lazy=True)

    def lookup(self, address: str, config_file: str | None) -> Lookup:
        found: Lookup = dict(self._config(config_file).base_ssh_config.lookup(address))
        return found

    def target(self, host: Host) -> Target:
        return resolve(host, self.lookup)

    def known_hosts(self, files: tuple[str, ...]) -> KnownHosts:
        with self._lock:
            if files not in self._known:
                self._known[files] = KnownHosts.load(files)
            return self._known[files]

    def connection(self, target: Target) -> _Connection:
        gateway: Any = False  # False, not None: never a gateway fabric found on its own
        if isinstance(target.gateway, str):
            gateway = target.gateway
        elif target.gateway is not None:
            gateway = self._gateway(target.gateway)
        # fabric takes whole seconds, and 0 would mean no timeout at all.
        seconds = max(1, math.ceil(self.timeout))
        conn = _Connection(
            target.address,
            user=target.user,
            port=target.port,
            config=self._private_config(target.config_file),
            gateway=gateway,
            connect_timeout=seconds,
            connect_kwargs={
                "key_filename": list(target.key_files),
                "look_for_keys": target.look_for_keys,
                "allow_agent": True,
                "banner_timeout": self.timeout,
                "auth_timeout": self.timeout,
                "channel_timeout": self.timeout,
                "transport_factory": tcp.transport,
            },
        )
        known = self.known_hosts(target.known_hosts_files)
        known.install(conn.client, target.key_name)
        conn.client.set_missing_host_key_policy(CheckingPolicy(known, accept_new_file()))
        conn.target, conn.known, conn.open_lock = target, known, threading.Lock()
        return conn

    def _gateway(self, target: Target) -> _Connection:
        with self._lock:
            found = self._gateways.get(target)
        if found is None:
            found = self.connection(target)
            with self._lock:
                found = self._gateways.setdefault(target, found)
        return found

    def close(self) -> None:
        with self._lock:
            gateways = list(self._gateways.values())
            self._gateways.clear()
        for conn in reversed(gateways):
            _close(conn)


def _close(conn: _Connection) -> None:
    # fabric closes the client only when connected; a failed handshake can leave a
    # ProxyCommand process or half-open transport behind, so close both regardless.
    conn.close()
    conn.client.close()
    if conn.proxy is not None:
        # paramiko's close only signals the process; waiting reaps it (no zombie per host).
        with contextlib.suppress(OSError):
            conn.proxy.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            conn.proxy.process.wait(timeout=2)


class HostSession:
    """An SSH connection to one host, opened on first use."""

    def __init__(
        self, host: Host, timeout: float = CONNECT_TIMEOUT, pool: Pool | None = None
    ) -> None:
        self.host = host
        self.timeout = timeout
        self._own_pool = pool is None
        self._pool = pool if pool is not None else Pool(timeout)
        self._conn: _Connection | None = None
        self._target: Target | None = None

    @property
    def user(self) -> str:
        """The user commands run as before any sudo (inventory, then ssh_config, then local)."""
        if self._target is None:
            self._target = self._pool.target(self.host)
        return self._target.user

    def _connect(self) -> _Connection:
        if self._conn is None:
            if self._target is None:
                self._target = self._pool.target(self.host)
            self._conn = self._pool.connection(self._target)
        if not self._conn.is_connected:
            _open(self._conn)
        return self._conn

    def run(
        self, command: str, timeout: float = COMMAND_TIMEOUT, sudo: bool | None = None
    ) -> Result:
        password = become_password()
        try:
            wrapped = self._wrap(command, sudo)
            conn = self._connect()
            # Remote stdin gets the sudo password, if any, then end of file, so a command that
            # reads stdin never waits for input that cannot come.
            feed = password + "\n" if wrapped.startswith("sudo -S") and password else ""
            exit_code, stdout, stderr = _execute(conn, wrapped, feed, timeout)
        except Exception as exc:  # every failure becomes a per-host result, never a crash
            where = self._conn.target if self._conn is not None else self._target
            known = self._conn.known if self._conn is not None else None
            error = describe_failure(where, known, exc, fallback=self.host.address)
            return Result(self.host.name, command, None, error=error)
        return Result(self.host.name, command, exit_code, stdout, stderr)

    def _wrap(self, command: str, sudo: bool | None) -> str:
        conn = self.host.connection
        needs = sudo if sudo is not None else (conn.become and self.user != "root")
        if not needs:
            return command
        prompt = "-S -p ''" if become_password() is not None else "-n"
        target = f"-u {shlex.quote(conn.become_user)} " if conn.become_user else ""
        return f"sudo {prompt} {target}sh -c {shlex.quote(command)}"

    def close(self) -> None:
        if self._conn is not None:
            _close(self._conn)
        if self._own_pool:
            self._pool.close()
        self._conn = None


def _execute(conn: _Connection, command: str, feed: str, timeout: float) -> tuple[int, str, str]:
    """Run `command` in a session channel of the open connection: `feed`, then end of file, on
    its stdin; its exit code, stdout and stderr (UTF-8, undecodable bytes replaced). Straight on
    paramiko's channel rather than through invoke's runner, whose three polling threads cost
    about 4 ms of the controller's CPU and 20 ms of latency per command on the lab."""
    transport = conn.client.get_transport()
    if transport is None:
        raise paramiko.SSHException("the connection closed")
    channel = transport.open_session(timeout=conn.connect_timeout)
    try:
        channel.exec_command(command)
        if feed:
            channel.sendall(feed.encode())
        channel.shutdown_write()
        stdout, stderr = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        # The channel's fileno turns readable on output to either stream, end of file and
        # close. End of file is read before the buffers are drained: what came before it is
        # then in them. sshd sends the exit status right after it (a close without one, as
        # when the command died of a signal, leaves paramiko's -1). paramiko sets and clears
        # that fileno for the two streams from two threads without a common lock, so a wakeup
        # can be lost while both streams flow: the wait is capped at WAKEUP_POLL.
        while True:
            ended = channel.eof_received or channel.closed
            while channel.recv_ready():
                stdout += channel.recv(65536)
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
            if ended:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandTimeout(timeout)
            select.select([channel], [], [], min(remaining, WAKEUP_POLL))
        if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise CommandTimeout(timeout)
        return (
            channel.recv_exit_status(),
            stdout.decode("utf-8", "replace"),
            stderr.decode("utf-8", "replace"),
        )
    finally:
        channel.close()


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

    def close(self) -> None:
        # The command may have exited and been reaped already (the lab's relay ends when the
        # host closes the connection): then there is nothing left to stop, and paramiko's own
        # close, run in its transport thread, would die on ProcessLookupError.
        with contextlib.suppress(ProcessLookupError):
            super().close()


def _proxy_failure(sock: paramiko.ProxyCommand | None) -> str | None:
    """The last line a ProxyCommand wrote to stderr, if it wrote one. Read without waiting and
    without reaping the process: paramiko still signals it when the transport closes."""
    if sock is None or sock.process.stderr is None:
        return None
    stderr = sock.process.stderr
    if not select.select([stderr], [], [], 0)[0]:
        return None
    lines = os.read(stderr.fileno(), 65536).decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else None


def on_hosts(
    hosts: list[Host],
    work: Callable[[HostSession], Any],
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Open one session per host and call `work(session)` on every host in parallel; hosts
    behind the same bastion share one connection to it. Returns {host name: work's result};
    sessions are closed afterwards."""
    if not hosts:
        return {}
    pool = Pool(timeout)

    def one(host: Host) -> Any:
        session = HostSession(host, timeout, pool)
        try:
            return work(session)
        finally:
            session.close()

    try:
        with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as executor:
            results = list(executor.map(one, hosts))
    finally:
        pool.close()
    return {host.name: result for host, result in zip(hosts, results, strict=True)}
