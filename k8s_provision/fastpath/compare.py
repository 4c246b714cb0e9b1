"""The fingerprint probes of a host (`probes_for`) and the comparison of what they read with
the host's expected state (`differences`)."""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from k8s_provision import facts, service_state
from k8s_provision.fastpath.expected import CLUSTER_WIDE_KINDS, Expected
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import HostFacts, Probe, etcd
from k8s_provision.probes import fingerprint as fp
from k8s_provision.probes.config_state import config_state


@dataclass(frozen=True)
class Difference:
    host: str
    kind: str  # one of expected.KINDS, or "ssh" when the host could not be read
    item: str  # the path, package, unit, key, ... that differs
    expected: str
    found: str

    @property
    def cluster_wide(self) -> bool:
        """Repaired by more than this host's plays (a member added, a key every host reads)."""
        return self.kind in CLUSTER_WIDE_KINDS


def _paths(spec: Expected) -> list[str]:
    paths = [f.path for f in spec.files] + [d.path for d in spec.directories]
    return paths + sorted({r.path for r in spec.repos})


def probes_for(cluster: Cluster, host: Host, spec: Expected) -> list[Probe[Any]]:
    """Everything `spec` names, read in one batch. `spec` is computed as outside a container,
    the superset: the kernel probe tells whether the kernel part applies."""
    probes: list[Probe[Any]] = [
        fp.files(_paths(spec)),
        fp.kernel([*spec.sysctl], spec.modules),
        fp.text("fp-hostname", "uname -n"),
    ]
    if spec.packages:
        probes.append(fp.packages(spec.package_query, spec.packages))
    if spec.units:
        probes.append(fp.units([u.name for u in spec.units]))
    if spec.restarts:
        probes.append(config_state(service_state.host_unit_paths(cluster, host)))
    if spec.hosts_lines is not None:
        begin, end = spec.hosts_markers
        script = shlex.quote(f"/^{begin}$/,/^{end}$/p")
        probes.append(fp.text("fp-hosts", f"sed -n {script} /etc/hosts"))
    if spec.selinux_permissive:
        probes.append(
            fp.text(
                "fp-selinux", "getenforce; grep -c '^SELINUX=enforcing$' /etc/selinux/config; true"
            )
        )
    if spec.repos:
        files = " ".join(sorted({shlex.quote(r.path) for r in spec.repos}))
        probes.append(fp.text("fp-repos", f"cat -- {files}"))
    if spec.firewall is not None and spec.firewall.mode == "open":
        probes.append(
            fp.text(
                "fp-firewall",
                "firewall-cmd --state && firewall-cmd --permanent --list-ports && echo @ &&"
                " firewall-cmd --permanent --zone=trusted --list-sources",
            )
        )
    if spec.flannel_key is not None:
        local = facts.etcd_local_endpoint(cluster)
        # The member list as verify reads it (same probe, same command): `up` batches both.
        members = etcd.members(facts.etcd_endpoint(cluster, host))
        probes += [members, fp.flannel_key(local, spec.flannel_key[0])]
    return probes


def differences(cluster: Cluster, host: Host, spec_for: Any, got: HostFacts) -> list[Difference]:
    """`spec_for(in_container)` gives the host's expected state; `got` what its probes read."""
    if got.error is not None:
        return [Difference(host.name, "ssh", host.address, "readable", got.error)]
    kernel = got.read(fp.kernel((), ())) or fp.Kernel(False, {}, frozenset())
    spec: Expected = spec_for(kernel.container)
    found: list[Difference] = []

    def differ(kind: str, item: str, want: object, have: object) -> None:
        found.append(Difference(host.name, kind, item, str(want), str(have)))

    files = got.read(fp.files(())) or {}
    for f in spec.files:
        state = files.get(f.path)
        if state is None or state.kind != "file":
            differ("file", f.path, "present", "missing")
        elif state.sha256 != f.sha256:
            differ("file", f.path, f"sha256 {f.sha256[:12]}", f"sha256 {state.sha256[:12]}")
        elif (state.mode, state.owner, state.group) != (f.mode, f.owner, f.group):
            differ(
                "file",
                f.path,
                f"{f.mode} {f.owner}:{f.group}",
                f"{state.mode} {state.owner}:{state.group}",
            )
    for d in spec.directories:
        state = files.get(d.path)
        if state is None or state.kind != "dir":
            differ("directory", d.path, "present", "missing")
        elif (state.mode, state.owner, state.group) != (d.mode, d.owner, d.group):
            differ(
                "directory",
                d.path,
                f"{d.mode} {d.owner}:{d.group}",
                f"{state.mode} {state.owner}:{state.group}",
            )

    if spec.packages:
        installed = got.read(fp.packages("", ())) or frozenset()
        for name in spec.packages:
            if name not in installed:
                differ("package", name, "installed", "missing")

    runs = got.read(fp.units([u.name for u in spec.units])) or {}
    for unit in spec.units:
        run = runs.get(unit.name)
        if run is None:
            differ("unit", unit.name, "readable", "no state")
            continue
        if not unit.active and not unit.enabled and run.load == "not-found":
            continue  # to be stopped and disabled: not installed is as good
        if (run.active == "active") != unit.active:
            differ("unit", unit.name, "active" if unit.active else "stopped", run.active)
        if (run.file_state == "enabled") != unit.enabled:
            differ(
                "unit",
                unit.name,
                "enabled" if unit.enabled else "disabled",
                run.file_state or "unknown",
            )
    # What each running service started with, recorded by the roles, and whether a file was
    # written after its start (service_state): the very test the roles restart on.
    states = service_state.parse_states(
        got.read(config_state({})) or "", {name: run.started for name, run in runs.items()}
    )
    for name, paths in spec.restarts.items():
        run = runs.get(name)
        if run is None or run.active != "active":
            continue  # reported above
        config = states.get(name)
        if config is None or config.stale:
            differ(
                "config-freshness",
                name,
                "running with the configuration on disk",
                "no record of the configuration it started with"
                if config is None or config.applied == service_state.NO_RECORD
                else f"started before {', '.join(paths)} last changed",
            )

    for key, value in spec.sysctl.items():
        if kernel.sysctl.get(key) != value:
            differ("sysctl", key, value, kernel.sysctl.get(key) or "unreadable")
    for module in spec.modules:
        if module not in kernel.modules:
            differ("kernel-module", module, "loaded", "not loaded")

    name = _text(got, "fp-hostname").strip()
    if spec.hostname is not None and name != spec.hostname:
        differ("hostname", "hostname", spec.hostname, name)
    if spec.hosts_lines is not None:
        block = _text(got, "fp-hosts").splitlines()[1:-1]
        if tuple(block) != spec.hosts_lines:
            differ("hosts-block", "/etc/hosts", "; ".join(spec.hosts_lines), "; ".join(block))
    found += _redhat(host, spec, got)
    found += _etcd(cluster, host, spec, got)
    return found


def _redhat(host: Host, spec: Expected, got: HostFacts) -> list[Difference]:
    found: list[Difference] = []
    if spec.selinux_permissive:
        words = _text(got, "fp-selinux").split()
        if "Enforcing" in words[:1] or words[1:2] != ["0"]:
            found.append(
                Difference(
                    host.name, "selinux", "SELinux", "permissive", " ".join(words) or "unreadable"
                )
            )
    if spec.repos:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(_text(got, "fp-repos"))
        except configparser.Error:
            parser = configparser.ConfigParser(interpolation=None)
        for repo in spec.repos:
            have = dict(parser[repo.section]) if parser.has_section(repo.section) else {}
            wrong = {k: v for k, v in repo.values.items() if have.get(k) != v}
            if wrong:
                found.append(
                    Difference(
                        host.name,
                        "yum-repo",
                        f"{repo.path} [{repo.section}]",
                        str(wrong),
                        str({k: have.get(k) for k in wrong}),
                    )
                )
    firewall = spec.firewall
    if firewall is not None and firewall.mode == "open":
        text = got.read(fp.text("fp-firewall", ""))
        if text is not None:  # firewalld not running: the roles leave it alone too
            ports, _, sources = text.partition("@")
            missing = [p for p in firewall.ports if p not in ports.split()[1:]]
            if firewall.trusted not in sources.split():
                missing.append(f"trusted source {firewall.trusted}")
            if missing:
                found.append(
                    Difference(host.name, "firewall", "firewalld", ", ".join(missing), "not open")
                )
    return found


def _etcd(cluster: Cluster, host: Host, spec: Expected, got: HostFacts) -> list[Difference]:
    if spec.flannel_key is None:
        return []
    found: list[Difference] = []
    url = facts.etcd_local_endpoint(cluster)
    key, value = spec.flannel_key
    stored = got.read(fp.flannel_key(url, key))
    if stored != value:
        found.append(Difference(host.name, "flannel-key", key, value, stored or "absent"))
    listed = got.read(etcd.members(facts.etcd_endpoint(cluster, host)))
    want = sorted((n, facts.etcd_peer_url(cluster, cluster.host(n))) for n in cluster.etcd)
    have = (
        sorted((m.name, url) for m in (listed.members or ()) if listed for url in m.peer_urls)
        if listed is not None
        else []
    )
    if have != want:
        found.append(
            Difference(
                host.name, "etcd-membership", "members", _pairs(want), _pairs(have) or "unreadable"
            )
        )
    return found


def _text(got: HostFacts, name: str) -> str:
    text: str | None = got.read(fp.text(name, ""))
    return text or ""


def _pairs(pairs: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{name}={url}" for name, url in pairs)
