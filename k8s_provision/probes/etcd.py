"""etcd probes (etcdctl v3 and v2, the data directory, flannel configs anywhere in the
keyspace) and how etcdctl's output is read."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from k8s_provision.probes.base import PROBE_TIMEOUT, TIMED_OUT, Output, Probe, raw


@dataclass(frozen=True)
class Endpoint:
    """An etcd client URL and, with k8s_security tls, the CA and client certificate to reach
    it with (facts.etcd_endpoint). Paths are the tool's own constants: safe as shell words."""

    url: str
    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def v3_tls(self) -> str:
        return f" --cacert={self.ca} --cert={self.cert} --key={self.key}" if self.ca else ""

    @property
    def v2_tls(self) -> str:
        return (
            f" --ca-file={self.ca} --cert-file={self.cert} --key-file={self.key}" if self.ca else ""
        )

    @property
    def curl_tls(self) -> str:
        return f" --cacert {self.ca} --cert {self.cert} --key {self.key}" if self.ca else ""


def endpoint(target: Endpoint | str) -> Endpoint:
    """A plain URL is a plaintext endpoint (k8s_security classic)."""
    return target if isinstance(target, Endpoint) else Endpoint(target)


def _v3(target: Endpoint | str) -> str:
    e = endpoint(target)
    return (
        f"ETCDCTL_API=3 etcdctl{e.v3_tls} --endpoints={e.url} --dial-timeout=2s"
        " --command-timeout=4s"
    )


def _v2(target: Endpoint | str) -> str:
    e = endpoint(target)
    return f"ETCDCTL_API=2 etcdctl{e.v2_tls} --endpoints={e.url}"


def etcdctl_problem(output: Output) -> str:
    """The line of etcdctl's output that says what is wrong (it logs JSON warnings too)."""
    if output.exit_code == 127:
        return "etcdctl is not installed on this host"
    if output.exit_code == TIMED_OUT:
        return f"etcdctl timed out after {PROBE_TIMEOUT} s"
    lines = [
        line.strip()
        for line in output.text.splitlines()
        if line.strip() and not line.lstrip().startswith("{")
    ]
    for line in lines:
        if " is unhealthy: " in line:
            return line.split(" is unhealthy: ", 1)[1]
    return lines[-1].removeprefix("Error: ") if lines else f"etcdctl exited {output.exit_code}"


@dataclass(frozen=True)
class Member:
    name: str  # empty for a member added but never started
    peer_urls: tuple[str, ...]


@dataclass(frozen=True)
class MemberList:
    """`etcdctl member list -w json`: `members` None when it failed or printed no list (the
    raw `output` says why); `cluster_id` None when the header is unreadable."""

    output: Output
    members: tuple[Member, ...] | None
    cluster_id: int | None


def parse_member_list(output: Output) -> MemberList:
    if output.exit_code != 0:
        return MemberList(output, None, None)
    try:
        data = json.loads(output.stdout)
        members = tuple(
            Member(str(m.get("name", "")), tuple(str(u) for u in m.get("peerURLs") or []))
            for m in data.get("members", [])
        )
    except (ValueError, AttributeError):
        return MemberList(output, None, None)
    try:
        cluster_id: int | None = int(data["header"]["cluster_id"])
    except (ValueError, KeyError, TypeError):
        cluster_id = None
    return MemberList(output, members, cluster_id)


def health(url: Endpoint | str) -> Probe[Output]:
    return Probe("etcd-health", f"{_v3(url)} endpoint health", raw)


def reach(url: Endpoint | str) -> Probe[Output]:
    # Says why a member is down ("Connection refused") where etcdctl only times out.
    e = endpoint(url)
    return Probe("etcd-reach", f"curl -sS -m 3{e.curl_tls} {e.url}/health", raw)


def anonymous(url: Endpoint | str) -> Probe[Output]:
    """etcd's /health asked with the CA but without a client certificate: with k8s_security
    tls etcd must refuse it in the TLS handshake. Asked from 127.0.0.1 (the probe runs on the
    member itself), so the refusal etcd logs names loopback and diagnose does not take verify's
    own probe for a client without a certificate (signature tls-client-certificate-missing)."""
    e = endpoint(url)
    ca = f" --cacert {e.ca}" if e.ca else ""
    return Probe("etcd-anonymous", f"curl -sS -m 3 --interface 127.0.0.1{ca} {e.url}/health", raw)


def members(url: Endpoint | str) -> Probe[MemberList]:
    return Probe("etcd-members", f"{_v3(url)} member list -w json", parse_member_list)


def member_list_v2(url: Endpoint | str) -> Probe[Output]:
    return Probe("etcd-member-list-v2", f"{_v2(url)} member list", raw)


def cluster_health_v2(url: Endpoint | str) -> Probe[Output]:
    return Probe("etcd-cluster-health-v2", f"{_v2(url)} cluster-health", raw)


def endpoint_status(url: Endpoint | str) -> Probe[Output]:
    return Probe("etcd-endpoint-status", f"{_v3(url)} endpoint status -w table", raw)


def data_dir(path: str) -> Probe[Output]:
    quoted = shlex.quote(path)
    return Probe("etcd-data-dir", f"ls -la -- {quoted} {quoted}/member {quoted}/member/wal", raw)


def parse_config_search(output: Output) -> list[tuple[str, str]] | None:
    """[(key, value)] of `config_search`; None when it failed."""
    if output.exit_code != 0:
        return None
    return [
        (key, value)
        for key, _, value in (line.partition("\t") for line in output.stdout.splitlines())
    ]


def config_search(url: Endpoint | str) -> Probe[list[tuple[str, str]] | None]:
    """Flannel network configs anywhere in etcd (not under the apiserver's /registry): finds a
    key stored under another prefix than the inventory's."""
    v2 = _v2(url)
    return Probe(
        "flannel-config-search",
        f"{v2} ls --recursive / | grep '/config$' | grep -v '^/registry/' | head -n 50"
        f' | while read -r k; do printf "%s\\t" "$k"; {v2} get "$k" | tr -d "\\n"; echo;'
        " done",
        parse_config_search,
    )
