"""One plain sentence per kind of SSH failure, naming the host and what to do (pyinfra's
habit): could not resolve, refused, timed out, authentication, host key unknown, changed (with
the exact `ssh-keygen -R` command) or revoked, and failures of the bastion in front of it."""

from __future__ import annotations

import errno
import shlex
import socket
from typing import TYPE_CHECKING, Any

import paramiko

from k8s_provision.ssh.known_hosts import HostKeyRefused, KnownHosts

if TYPE_CHECKING:
    from k8s_provision.ssh.target import Target


class GatewayError(Exception):
    """The bastion (or jump host) in front of a host could not be reached."""

    def __init__(self, gateway: Any, error: BaseException) -> None:
        super().__init__(str(error))
        self.gateway = gateway  # the gateway's _Connection (target and known hosts)
        self.error = error


class CommandTimeout(Exception):
    """A command that ran on the host but did not finish within its timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the command did not finish within {timeout:g} s")
        self.timeout = timeout


def describe_failure(
    target: Target | None, known: KnownHosts | None, err: BaseException, *, fallback: str
) -> str:
    where = target.where if target is not None else fallback
    if isinstance(err, GatewayError):
        gateway = err.gateway
        why = describe_failure(gateway.target, gateway.known, err.error, fallback="the bastion")
        via = gateway.target.where if gateway.target is not None else "the bastion"
        return f"cannot reach {where} through {via}: {why}"
    if isinstance(err, HostKeyRefused):
        return str(err)
    if isinstance(err, paramiko.BadHostKeyException):
        return _changed_key(target, known, err, where)
    if isinstance(err, paramiko.ProxyCommandFailure):
        return f"cannot reach {where} through the ProxyCommand: {err.error}"
    if isinstance(err, paramiko.AuthenticationException):
        user = target.user if target is not None else "the user"
        keys = ", ".join(target.key_files) if target and target.key_files else "agent and ~/.ssh"
        return f"SSH authentication failed for {user}@{where} (keys from {keys}): {err}"
    if isinstance(err, CommandTimeout):
        return f"the command timed out on {where} after {err.timeout:g} s"
    if isinstance(err, socket.gaierror):
        name = target.hostname if target is not None else fallback
        return f"could not resolve host name {name}"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"timed out connecting to {where}"
    if isinstance(err, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in err.errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return f"connection refused by {where} (is sshd running?)"
        return f"cannot connect to {where}: {err}"
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused by {where} (is sshd running?)"
    if isinstance(err, (OSError, EOFError, paramiko.SSHException)):
        text = str(err) or type(err).__name__
        return f"cannot reach {where}: {text}"
    return f"{type(err).__name__}: {err}"


def _changed_key(
    target: Target | None, known: KnownHosts | None, err: paramiko.BadHostKeyException, where: str
) -> str:
    name = target.key_name if target is not None else err.hostname
    if known is not None:
        revoked = known.revoked(name, err.key)
        if revoked is not None:
            return f"the host key of {where} is revoked ({revoked.where}); refusing to connect"
        entries = known.host_entries(name)
        if entries:
            path = entries[0].where.rpartition(":")[0]
            return (
                f"host key of {where} changed (a reinstalled host, or a man-in-the-middle); the"
                f" known key is at {entries[0].where}. If the change is expected, remove it:"
                f" ssh-keygen -f {shlex.quote(path)} -R {shlex.quote(name)}"
            )
    return (
        f"host key of {where} changed (a reinstalled host, or a man-in-the-middle); if"
        f" expected, remove the old key: ssh-keygen -R {shlex.quote(name)}"
    )
