"""Labelled test doubles of k8s_provision.transport.Transport."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
from collections.abc import Callable
from typing import Any

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


class EtcdDouble:
    """DOUBLE: an in-memory etcd cluster answering the etcdctl v3 command lines the membership
    code sends (member list -w json, endpoint health, member remove) as etcd 3.4 prints them;
    hosts listed in `down` answer nothing, like a powered-off host."""

    def __init__(self, members: list[dict[str, object]], healthy: set[str]) -> None:
        self.members = members
        self.healthy = healthy
        self.down: set[str] = set()
        self.removed: list[str] = []
        self.fail_removes = 0
        self.commands: list[tuple[str, str]] = []

    def run(self, host: Host, command: str, timeout: float = ssh.COMMAND_TIMEOUT) -> ssh.Result:
        self.commands.append((host.name, command))
        if host.name in self.down:
            return ssh.Result(host.name, command, None, error="connection refused")
        words = shlex.split(command.removeprefix("ETCDCTL_API=3 "))
        args = [w for w in words[1:] if not w.startswith("--")]
        if args[:2] == ["member", "list"]:
            return ssh.Result(host.name, command, 0, json.dumps({"members": self.members}))
        if args[:2] == ["endpoint", "health"]:
            endpoints = next(w for w in words if w.startswith("--endpoints=")).split("=", 1)[1]
            lines = [
                f"{url} is healthy: successfully committed proposal"
                if url in self.healthy
                else f"{url} is unhealthy: failed to commit proposal"
                for url in endpoints.split(",")
            ]
            code = 0 if all(" is healthy" in line for line in lines) else 1
            return ssh.Result(host.name, command, code, "\n".join(lines))
        if args[:2] == ["member", "remove"]:
            if self.fail_removes:
                self.fail_removes -= 1
                return ssh.Result(host.name, command, 1, "", "etcdserver: unhealthy cluster")
            self.members = [m for m in self.members if f"{m['ID']:x}" != args[2]]
            self.removed.append(args[2])
            return ssh.Result(host.name, command, 0, f"Member {args[2]} removed")
        return ssh.Result(host.name, command, 127, "", f"double: unknown command {command}")

    def close(self) -> None:
        """Nothing to close."""


class RecordingOutput:
    """DOUBLE: phases.manager.Output that records what would be printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str, style: str = "") -> None:
        self.lines.append(text)

    def status(self, text: str) -> contextlib.AbstractContextManager[object]:
        self.lines.append(text)
        return contextlib.nullcontext()

    def playbook(
        self, title: str, hosts: list[str]
    ) -> contextlib.AbstractContextManager[Callable[[dict[str, Any]], None]]:
        self.lines.append(f"playbook {title} on {', '.join(hosts)}")
        return contextlib.nullcontext(lambda _event: None)

    def report(self, report: object) -> None:
        self.lines.append(f"report {report}")
