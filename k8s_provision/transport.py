"""How phases and the cluster lock talk to hosts: one command on one host, one result. The
production transport runs it over SSH (k8s_provision.ssh's public API); tests use labelled
doubles of the same protocol."""

from __future__ import annotations

import threading
from typing import Protocol

from k8s_provision import ssh
from k8s_provision.model import Host

Result = ssh.Result


class Transport(Protocol):
    def run(self, host: Host, command: str, timeout: float = ssh.COMMAND_TIMEOUT) -> Result:
        """Run a POSIX sh command line on `host` as root; never raises for a host's failure."""
        ...

    def close(self) -> None: ...


class SshTransport:
    """One SSH session per host, opened on first use and reused; safe to share between
    threads (a session serves one command at a time)."""

    def __init__(self, connect_timeout: float = ssh.CONNECT_TIMEOUT) -> None:
        self.connect_timeout = connect_timeout
        self._sessions: dict[str, tuple[ssh.HostSession, threading.Lock]] = {}
        self._guard = threading.Lock()

    def run(self, host: Host, command: str, timeout: float = ssh.COMMAND_TIMEOUT) -> Result:
        with self._guard:
            if host.name not in self._sessions:
                session = ssh.HostSession(host, timeout=self.connect_timeout)
                self._sessions[host.name] = (session, threading.Lock())
            session, busy = self._sessions[host.name]
        with busy:
            return session.run(command, timeout=timeout)

    def close(self) -> None:
        with self._guard:
            for session, _ in self._sessions.values():
                session.close()
            self._sessions.clear()
