"""Labelled test doubles of k8s_provision.transport.Transport."""

from __future__ import annotations

import subprocess

from k8s_provision import ssh
from k8s_provision.model import Host


class LocalShellTransport:
    """DOUBLE: runs every host's command with this machine's real /bin/sh instead of over SSH,
    so host scripts (flock, stat, mv) are exercised for real against a temporary directory."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    def run(self, host: Host, command: str, timeout: float = ssh.COMMAND_TIMEOUT) -> ssh.Result:
        self.commands.append((host.name, command))
        done = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
        )
        return ssh.Result(host.name, command, done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        """Nothing to close."""
