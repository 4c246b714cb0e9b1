"""`certs check`: every PKI file on every host against the cluster's PKI on the controller:
present, owner and mode as planned, each certificate signed by its CA, not expired (a warning
under 30 days), its names covering the host's addresses; keys and kubeconfigs identical to
the controller's copy (a key that does not belong to its certificate breaks TLS)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509

from k8s_provision import facts, probes
from k8s_provision.errors import UsageError
from k8s_provision.model import Cluster, Host
from k8s_provision.pki import crypto
from k8s_provision.pki.plan import HostFile, host_files, leaves
from k8s_provision.probes import HostFacts, Probe
from k8s_provision.probes.certs import files as files_probe
from k8s_provision.probes.files import FileState
from k8s_provision.report import Check, Report

WARN_DAYS = 30


def probes_for(cluster: Cluster, host: Host) -> list[Probe[dict[str, FileState] | None]]:
    planned = host_files(cluster, host)
    return [files_probe([f.dest for f in planned])] if planned else []


def file_checks(cluster: Cluster, host: Host, got: HostFacts, state_dir: Path) -> list[Check]:
    """One check per PKI file of `host` (`cert:<file>`)."""
    planned = host_files(cluster, host)
    if not planned:
        return []
    if got.error is not None:
        return [Check(host.name, "ssh", "fail", got.error)]
    found = got.read(files_probe([f.dest for f in planned]))
    if found is None:
        return [Check(host.name, "certs", "fail", "cannot read the PKI files (stat failed)")]
    cas = _cas(state_dir)
    return [_one(cluster, host, f, found.get(f.dest), state_dir, cas) for f in planned]


def summary_check(host: Host, checks: list[Check]) -> Check:
    """verify's one row per host: the worst of its `cert:*` checks."""
    for status in ("fail", "warn"):
        bad = [c for c in checks if c.status == status]
        if bad:
            listed = "; ".join(f"{c.check.removeprefix('cert:')}: {c.detail}" for c in bad[:3])
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            return Check(host.name, "certs", status, listed + more)
    return Check(host.name, "certs", "pass", f"{len(checks)} PKI files as the PKI made them")


def _cas(state_dir: Path) -> dict[str, x509.Certificate]:
    out = {}
    for name, stem in (("cluster", "ca"), ("etcd", "etcd-ca")):
        path = state_dir / f"{stem}.crt"
        if path.exists():
            out[name] = crypto.load_cert(path.read_bytes())
    return out


def _one(
    cluster: Cluster,
    host: Host,
    planned: HostFile,
    state: FileState | None,
    state_dir: Path,
    cas: Mapping[str, x509.Certificate],
) -> Check:
    name = f"cert:{planned.dest}"
    if state is None or not state.present:
        return Check(host.name, name, "fail", "missing (run up)")
    problems = []
    if (state.owner, state.mode) != (planned.owner, planned.mode.lstrip("0")):
        problems.append(
            f"owner {state.owner} mode {state.mode}, want {planned.owner} {planned.mode}"
        )
    if not planned.dest.endswith(".crt"):
        local = state_dir / planned.src
        if local.exists() and hashlib.sha256(local.read_bytes()).hexdigest() != state.sha256:
            problems.append("differs from the cluster PKI's copy (run up)")
        return _verdict(host, name, problems, [], "as the PKI made it")
    try:
        cert = crypto.load_cert(state.content.encode())
    except ValueError:
        return Check(host.name, name, "fail", "not a PEM certificate")
    stem = Path(planned.dest).name.removesuffix(".crt")
    leaf = next((lf for lf in leaves(cluster, host) if lf.stem == stem), None)
    # A leaf names its CA; the CA certificates themselves are checked against the PKI's own.
    ca_name = leaf.ca if leaf is not None else ("etcd" if stem == "etcd-ca" else "cluster")
    ca = cas.get(ca_name)
    if ca is None or not crypto.signed_by(cert, ca):
        problems.append(f"not signed by the cluster's {ca_name} CA in {state_dir}")
    warnings = []
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    until = cert.not_valid_after_utc.date().isoformat()
    if left.total_seconds() <= 0:
        problems.append(f"expired on {until}")
    elif left.days < WARN_DAYS:
        warnings.append(f"expires on {until}, in {left.days} days")
    if leaf is not None and "server" in leaf.usages:
        have = {str(n.value) for n in crypto.names_of(cert)}
        wanted = [a for a in (*leaf.ip_addresses, *leaf.dns_names) if _norm(a) not in have]
        if wanted:
            problems.append(f"SAN missing {', '.join(wanted)}")
    issuer = cert.issuer.rfc4514_string()
    return _verdict(host, name, problems, warnings, f"valid until {until}, issuer {issuer}")


def _norm(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _verdict(host: Host, name: str, problems: list[str], warnings: list[str], fine: str) -> Check:
    if problems:
        return Check(host.name, name, "fail", "; ".join(problems))
    if warnings:
        return Check(host.name, name, "warn", "; ".join(warnings))
    return Check(host.name, name, "pass", fine)


def certs_check(cluster: Cluster) -> Report:
    """`k8s-provision certs check`: every host's PKI files, one row each."""
    if not cluster.settings.tls:
        raise UsageError("k8s_security is classic: the cluster has no PKI of the tool's to check")
    collected = probes.collect(
        cluster,
        lambda host: probes_for(cluster, host),
        what="check",
        script_timeout=probes.PROBE_TIMEOUT + 15.0,
    )
    state = facts.pki_state_dir(cluster)
    checks: list[Check] = []
    for host in cluster.hosts:
        got = collected[host.name].facts
        checks += file_checks(cluster, host, got, state)
    return Report(tuple(checks))
