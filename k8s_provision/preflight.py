"""Checks before any host is changed, on all hosts in parallel over SSH: reachable, privilege
escalation works, OS family supported and as the inventory says, Python new enough for the
installed ansible-core, clocks in step, hostnames and machine ids unique."""

from __future__ import annotations

import re
import time

from ansible.release import __version__ as ansible_version

from k8s_provision.facts import PYTHON_INTERPRETERS, min_target_python
from k8s_provision.model import Cluster, Host
from k8s_provision.report import Check
from k8s_provision.ssh import HostSession, on_hosts

# Clocks further apart than this break etcd's leases and TLS later on.
MAX_CLOCK_SKEW_SECONDS = 5.0

SUPPORTED_FAMILIES = {
    "redhat": ("rhel", "centos", "fedora", "rocky", "almalinux", "ol"),
    "debian": ("debian", "ubuntu"),
}

_PROBE = r"""
echo "uid=$(id -u)"
echo "user=$(id -un)"
echo "hostname=$(hostname)"
echo "machine_id=$(cat /etc/machine-id 2>/dev/null)"
. /etc/os-release 2>/dev/null; echo "os=$ID"; echo "os_like=$ID_LIKE"; echo "os_version=$VERSION_ID"
for p in {interpreters}; do
  # A name on PATH may not run (a version manager's shim for a version not installed): take
  # the first interpreter that answers with its version.
  v=$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  [ -n "$v" ] && { echo "python=$p $v"; break; }
done
echo "clock=$(date +%s.%N)"
"""


def python_too_old(found: tuple[int, int], version: str = ansible_version) -> bool:
    minimum = min_target_python(version)
    if minimum == (2, 7):
        return found < (2, 7) or (3, 0) <= found < (3, 6)
    return found < minimum


def parse_probe(output: str) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key.strip()] = value.strip()
    return facts


def _probe(session: HostSession) -> tuple[dict[str, str] | None, str | None, float]:
    interpreter = session.host.connection.python_interpreter
    candidates = (interpreter,) if interpreter else PYTHON_INTERPRETERS
    script = _PROBE.replace("{interpreters}", " ".join(candidates))
    sent = time.time()
    result = session.run(script, timeout=30)
    local = (sent + time.time()) / 2
    if result.error is not None:
        return None, result.error, local
    if result.exit_code != 0:
        return None, (result.stderr.strip() or f"probe exited {result.exit_code}"), local
    return parse_probe(result.stdout), None, local


def _host_problems(host: Host, facts: dict[str, str], family: str, local: float) -> list[Check]:
    problems: list[Check] = []
    if facts.get("uid") != "0":
        # The login user as the host saw it: the inventory's, else ssh_config's, else ours.
        user = facts.get("user") or host.connection.user or "the login user"
        problems.append(
            Check(
                host.name,
                "become",
                "fail",
                f"commands run as uid {facts.get('uid') or '?'}, not root: set"
                f" ansible_become=true for {user} and allow it passwordless sudo, or put the"
                " password in K8SP_BECOME_PASSWORD",
            )
        )
    os_id = facts.get("os", "")
    like = facts.get("os_like", "").split()
    supported = SUPPORTED_FAMILIES[family]
    if os_id not in supported and not set(like) & set(supported):
        other = next(
            (f for f, ids in SUPPORTED_FAMILIES.items() if os_id in ids or set(like) & set(ids)),
            None,
        )
        fix = f"; set k8s_os_family={other}" if other else ""
        problems.append(
            Check(
                host.name,
                "os",
                "fail",
                f"{os_id or 'unknown OS'} {facts.get('os_version', '')} is not a {family}-family"
                f" system (k8s_os_family={family}){fix}",
            )
        )
    python = facts.get("python", "")
    match = re.search(r"(\d+)\.(\d+)$", python)
    if not match:
        problems.append(
            Check(host.name, "python", "fail", "no Python found; Ansible needs one on the host")
        )
    else:
        found = (int(match.group(1)), int(match.group(2)))
        if python_too_old(found):
            minimum = ".".join(map(str, min_target_python()))
            problems.append(
                Check(
                    host.name,
                    "python",
                    "fail",
                    f"{python.split()[0]} is Python {found[0]}.{found[1]}; ansible-core"
                    f" {ansible_version} needs {minimum} or newer on the hosts. Fix: install"
                    " the el7 extra, which keeps ansible-core below 2.17:"
                    " pip install 'k8s-provision[el7]'",
                )
            )
    clock = facts.get("clock", "")
    try:
        skew = float(clock) - local
    except ValueError:
        skew = 0.0
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        problems.append(
            Check(
                host.name,
                "clock",
                "fail",
                f"clock is {skew:+.1f} s off this machine's; etcd needs clocks in step: run"
                " chronyd or ntpd on every host",
            )
        )
    return problems


def _duplicates(facts: dict[str, dict[str, str]], key: str) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for host, values in facts.items():
        if values.get(key):
            owners.setdefault(values[key], []).append(host)
    return {value: hosts for value, hosts in owners.items() if len(hosts) > 1}


def preflight(cluster: Cluster, hosts: list[Host] | None = None) -> list[Check]:
    """Every problem found, failures and warnings, in host order."""
    targets = hosts if hosts is not None else list(cluster.hosts)
    family = cluster.settings.k8s_os_family
    results = on_hosts(targets, _probe)
    problems: list[Check] = []
    facts: dict[str, dict[str, str]] = {}
    for host in targets:
        found, error, local = results[host.name]
        if found is None:
            problems.append(Check(host.name, "ssh", "fail", error or "unreachable"))
            continue
        facts[host.name] = found
        problems += _host_problems(host, found, family, local)
    for machine_id, owners in _duplicates(facts, "machine_id").items():
        for name in owners:
            problems.append(
                Check(
                    name,
                    "machine-id",
                    "fail",
                    f"machine id {machine_id[:8]}... is shared by {', '.join(owners)} (cloned"
                    " image): run `rm /etc/machine-id && systemd-machine-id-setup` on each clone",
                )
            )
    for hostname, owners in _duplicates(facts, "hostname").items():
        for name in owners:
            problems.append(
                Check(
                    name,
                    "hostname",
                    "warn",
                    f"hostname {hostname!r} is shared by {', '.join(owners)}; the playbooks rename"
                    " each host to its inventory name",
                )
            )
    return problems
