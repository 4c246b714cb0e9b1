"""OpenSSH options as the inventory gives them (ansible_ssh_common_args/extra_args), and the
ProxyCommand that takes plain ssh (and so Ansible) through a bastion. No network here: this
module is also imported inside Ansible by the k8s_provision.cluster.context lookup."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from k8s_provision.model import Host

_TOKEN_RE = re.compile(r"%(.)")


@dataclass(frozen=True)
class SshOptions:
    """The subset of OpenSSH options the CLI's own SSH sessions honour."""

    proxy_command: str | None = None
    proxy_jump: str | None = None
    known_hosts_files: tuple[str, ...] = ()
    strict_host_key_checking: bool = True
    identity_files: tuple[str, ...] = ()


def parse_ssh_args(*args: str | None) -> SshOptions:
    """Parse OpenSSH command-line options (-o Key=Value, -o Key Value, -J, -i)."""
    words: list[str] = []
    for arg in args:
        if arg:
            words += shlex.split(arg)
    options: dict[str, str] = {}
    identities: list[str] = []
    jump: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word.startswith("-o"):
            text = word[2:] if word != "-o" else value
            i += 1 if word != "-o" else 2
            key, sep, val = text.partition("=")
            if not sep:
                key, _, val = text.partition(" ")
            options[key.strip().lower()] = val.strip()
            continue
        if word in ("-J", "-i"):
            if word == "-J":
                jump = value
            else:
                identities.append(value)
            i += 2
            continue
        i += 1
    known = tuple(os.path.expanduser(p) for p in options.get("userknownhostsfile", "").split())
    strict = options.get("stricthostkeychecking", "yes").lower() not in ("no", "off")
    return SshOptions(
        proxy_command=options.get("proxycommand"),
        proxy_jump=options.get("proxyjump") or jump,
        known_hosts_files=known,
        strict_host_key_checking=strict,
        identity_files=tuple(identities),
    )


def expand_tokens(command: str, host: str, port: int, user: str) -> str:
    """OpenSSH's %h, %p, %r and %% in a ProxyCommand."""
    values = {"h": host, "p": str(port), "r": user, "%": "%"}
    return _TOKEN_RE.sub(lambda m: values.get(m.group(1), m.group(0)), command)


def bastion_proxy_command(bastion: Host) -> str:
    """`ssh -W %h:%p` through the bastion, carrying the bastion's own user, port, key, known
    hosts and proxy. Options given on the ssh command line do not reach a ProxyJump child, so a
    ProxyCommand is what keeps host key checking on for the bastion too."""
    conn = bastion.connection
    options = parse_ssh_args(conn.ssh_common_args, conn.ssh_extra_args)
    words = ["ssh", "-W", "%h:%p", "-p", str(conn.port or 22)]
    if conn.private_key_file:
        words += ["-i", conn.private_key_file]
    for path in options.known_hosts_files:
        words += ["-o", f"UserKnownHostsFile={path}"]
    checking = "yes" if options.strict_host_key_checking else "no"
    words += ["-o", f"StrictHostKeyChecking={checking}"]
    if options.proxy_command:
        # %% survives the outer ssh's expansion as %, for the inner ssh to expand.
        words += ["-o", "ProxyCommand=" + options.proxy_command.replace("%", "%%")]
    words.append(f"{conn.user or 'root'}@{bastion.address}")
    return " ".join(w if w == "%h:%p" else shlex.quote(w) for w in words)


def bastion_ssh_args(bastion: Host) -> str:
    """ansible_ssh_extra_args that send a host through the bastion."""
    return "-o " + shlex.quote("ProxyCommand=" + bastion_proxy_command(bastion))
