"""Prove a cluster healthy: the checks operators run by hand (systemctl, etcdctl, the flannel keys
in etcd, docker0, the apiserver's /healthz, kubectl get componentstatuses / nodes), run over SSH
on every host in parallel and turned into a `Report`.

Two halves, so the logic is testable without hosts:
- `collect` opens one SSH session per host and runs ONE shell script there that starts every
  probe the host's roles call for in parallel (each under `timeout`) and prints their exit
  codes and base64 output; one round trip per host.
- `evaluate` is pure: it turns the outputs of all hosts into checks. Some checks combine hosts:
  flannel leases are read from etcd on one member and judged for every flannel host.

Rules every check follows:
- A host SSH cannot reach (or whose script cannot run) gets exactly one row, a failed `ssh`
  check with the precise error; its other checks are omitted. Checks on reachable hosts that
  need data from an unreachable one are `skip` with the reason.
- A component that is not installed on a host (its unit is `not-found`) makes its checks
  `skip` with the reason, never `pass`.
- Security findings are `warn`: they do not fail verify.
- (host, check) pairs are unique: one row per check and host.

The apiserver is checked three ways, since `kubectl get componentstatuses` is deprecated since
1.19 and must never be the only API check: /healthz, componentstatuses and nodes."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from k8s_provision import ssh
from k8s_provision.model import Cluster, Host
from k8s_provision.report import Check, Report

# Units in start order, and the role that runs each.
UNITS_BY_ROLE: tuple[tuple[str, str], ...] = (
    ("etcd", "etcd"),
    ("flanneld", "flannel"),
    ("docker", "node"),
    ("kube-apiserver", "master"),
    ("kube-controller-manager", "master"),
    ("kube-scheduler", "master"),
    ("kubelet", "node"),
    ("kube-proxy", "node"),
)
NODE_PRESSURE_CONDITIONS = ("OutOfDisk", "MemoryPressure", "DiskPressure")

PROBE_TIMEOUT = 20  # seconds each probe may run on the host (coreutils `timeout`)
SCRIPT_TIMEOUT = PROBE_TIMEOUT + 15.0  # the whole script, probes run in parallel
_MARK = "@@k8s-provision-verify@@"
_CURL = "curl -sS -m 5 --connect-timeout 3 -w '\\n%{http_code}'"


@dataclass(frozen=True)
class Probe:
    name: str
    command: str


@dataclass(frozen=True)
class Output:
    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def text(self) -> str:
        return "\n".join(part.strip() for part in (self.stdout, self.stderr) if part.strip())


@dataclass(frozen=True)
class HostFacts:
    """What the probes printed on one host, or why they could not run (`error`)."""

    host: str
    outputs: Mapping[str, Output] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class UnitState:
    load: str
    active: str
    sub: str
    file_state: str = ""

    @property
    def installed(self) -> bool:
        return self.load != "not-found"


# ---------------------------------------------------------------------------------------------
# What runs where


def host_units(host: Host) -> tuple[str, ...]:
    """The systemd units `host` runs, from its roles, in start order."""
    has = {
        "etcd": host.is_etcd,
        "flannel": host.runs_flannel,
        "master": host.is_master,
        "node": host.is_node,
    }
    return tuple(unit for unit, role in UNITS_BY_ROLE if has[role])


def _etcd_url(cluster: Cluster, host: Host) -> str:
    return f"http://{host.ip}:{cluster.settings.etcd_client_port}"


def _api_url(cluster: Cluster) -> str:
    scheme = "https" if _secure_api(cluster) else "http"
    return f"{scheme}://{cluster.master.ip}:{cluster.settings.kube_api_port}"


def _secure_api(cluster: Cluster) -> bool:
    """From 1.20 the API server has no insecure port: checks use the cluster CA and the admin
    kubeconfig that k8s_provision.pki installs on the master."""
    return cluster.settings.kube_minor >= 20


_PKI = "/etc/kubernetes/pki"


def probes_for(cluster: Cluster, host: Host) -> list[Probe]:
    """The shell commands whose output `evaluate` needs from `host`."""
    s = cluster.settings
    units = " ".join(f"{u}.service" for u in host_units(host))
    probes = [
        Probe(
            "units",
            f"systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState -- {units}",
        )
    ]
    if host.is_etcd or host.is_master:
        probes.append(Probe("listen", "ss -ltn"))
    if host.is_etcd:
        url = _etcd_url(cluster, host)
        etcdctl = f"ETCDCTL_API=3 etcdctl --endpoints={url} --dial-timeout=2s --command-timeout=4s"
        keys = f"{url}/v2/keys{s.flannel_etcd_prefix}"
        probes += [
            Probe("etcd-health", f"{etcdctl} endpoint health"),
            # Says why a member is down ("Connection refused") where etcdctl only times out.
            Probe("etcd-reach", f"curl -sS -m 3 {url}/health"),
            Probe("etcd-members", f"{etcdctl} member list -w json"),
            # flannel 0.7 reads only the v2 API, so its keys are read through v2.
            Probe("flannel-config", f"{_CURL} {shlex.quote(keys + '/config')}"),
            Probe("flannel-subnets", f"{_CURL} {shlex.quote(keys + '/subnets')}"),
        ]
    if host.is_node:
        probes.append(Probe("docker0", "ip -o -4 addr show dev docker0"))
    if host.is_master:
        api = _api_url(cluster)
        # No --request-timeout: kubectl 1.5 may lack it; the probe's `timeout` bounds it.
        kubectl = f"kubectl -s {api}"
        curl = _CURL
        if _secure_api(cluster):
            kubectl += f" --kubeconfig {_PKI}/admin.kubeconfig"
            curl += f" --cacert {_PKI}/ca.crt"
        probes += [
            Probe("healthz", f"{curl} {api}/healthz"),
            # The full resource name: 1.5 discovery has no short names, so `cs` is unknown.
            Probe("kubectl-cs", f"{kubectl} get componentstatuses -o json"),
            Probe("kubectl-nodes", f"{kubectl} get nodes -o json"),
        ]
    return probes


def batch_script(probes: Iterable[Probe], timeout: int = PROBE_TIMEOUT) -> str:
    """One POSIX sh script running every probe in parallel; for each it prints a marker line
    `<mark> <name> <exit code>`, then its stdout and its stderr as one base64 line each."""
    probes = list(probes)
    lines = [
        "d=$(mktemp -d) || exit 125",
        "trap 'rm -rf \"$d\"' EXIT",
    ]
    for i, probe in enumerate(probes):
        lines.append(
            f"{{ timeout -k 2 {timeout} sh -c {shlex.quote(probe.command)}"
            f' >"$d/{i}.out" 2>"$d/{i}.err" </dev/null; echo $? >"$d/{i}.rc"; }} &'
        )
    lines.append("wait")
    for i, probe in enumerate(probes):
        lines += [
            f'printf "%s %s %s\\n" {_MARK} {shlex.quote(probe.name)} "$(cat "$d/{i}.rc")"',
            f'base64 -w0 <"$d/{i}.out"; echo',
            f'base64 -w0 <"$d/{i}.err"; echo',
        ]
    return "\n".join(lines) + "\n"


def parse_batch(text: str) -> dict[str, Output]:
    """Undo `batch_script`'s framing: {probe name: Output}."""
    outputs: dict[str, Output] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) != 3 or words[0] != _MARK or i + 2 >= len(lines):
            continue
        try:
            code = int(words[2])
            out = base64.b64decode(lines[i + 1], validate=True).decode("utf-8", "replace")
            err = base64.b64decode(lines[i + 2], validate=True).decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            continue
        outputs[words[1]] = Output(code, out, err)
    return outputs


# ---------------------------------------------------------------------------------------------
# Collect (SSH)


def collect(
    cluster: Cluster,
    *,
    connect_timeout: float = ssh.CONNECT_TIMEOUT,
    script_timeout: float = SCRIPT_TIMEOUT,
) -> dict[str, HostFacts]:
    """Run every host's probes over SSH, all hosts in parallel, one session and one command
    per host."""

    def work(session: ssh.HostSession) -> HostFacts:
        host = session.host
        probes = probes_for(cluster, host)
        result = session.run(batch_script(probes), timeout=script_timeout)
        if result.error is not None:
            return HostFacts(host.name, error=result.error)
        outputs = parse_batch(result.stdout)
        missing = [p.name for p in probes if p.name not in outputs]
        if missing:
            # The script itself failed: sudo refused, no /bin/sh, no mktemp or base64.
            why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            return HostFacts(
                host.name,
                error=f"the check script failed on {host.address} (exit {result.exit_code}):"
                f" {why[0]}",
            )
        return HostFacts(host.name, outputs=outputs)

    return ssh.on_hosts(list(cluster.hosts), work, timeout=connect_timeout)


def verify(cluster: Cluster, *, connect_timeout: float = ssh.CONNECT_TIMEOUT) -> Report:
    """Run every check on every host of `cluster` and return the report."""
    return evaluate(cluster, collect(cluster, connect_timeout=connect_timeout))


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_units(text: str, units: Iterable[str]) -> dict[str, UnitState]:
    """`systemctl show -p ... a b c` prints one blank-line separated block per unit, in the
    order asked. Matched by position: an alias reports its target's Id."""
    blocks = [block for block in text.strip().split("\n\n") if block.strip()]
    states: dict[str, UnitState] = {}
    for unit, block in zip(units, blocks, strict=False):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        states[unit] = UnitState(
            load=props.get("LoadState", ""),
            active=props.get("ActiveState", ""),
            sub=props.get("SubState", ""),
            file_state=props.get("UnitFileState", ""),
        )
    return states


def split_http(output: Output) -> tuple[int | None, str]:
    """(HTTP status, body) from curl run with -w '\\n%{http_code}'; None when nothing answered."""
    body, _, code = output.stdout.rpartition("\n")
    if output.exit_code != 0 or not code.strip().isdigit() or code.strip() == "000":
        return None, ""
    return int(code), body


def _curl_error(output: Output) -> str:
    if output.exit_code == 127:
        return "curl is not installed on this host"
    lines = [line for line in output.stderr.splitlines() if line.strip()]
    if not lines:
        return f"curl exited {output.exit_code}"
    return re.sub(r"^curl: \(\d+\) ", "", lines[-1])


def etcdctl_problem(output: Output) -> str:
    """The line of etcdctl's output that says what is wrong (it logs JSON warnings too)."""
    if output.exit_code == 127:
        return "etcdctl is not installed on this host"
    if output.exit_code == 124:
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


def listeners(ss_output: str, port: int) -> list[str]:
    """Local addresses listening on TCP `port` in `ss -ltn` output."""
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "LISTEN":
            continue
        address, _, local_port = fields[3].rpartition(":")
        if local_port == str(port):
            found.append(address.strip("[]").partition("%")[0])
    return found


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # "*" and other wildcards
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def parse_leases(body: str, prefix: str) -> dict[str, str]:
    """{subnet: PublicIP} from a v2 GET of <prefix>/subnets (keys like .../172.17.23.0-24)."""
    nodes = json.loads(body).get("node", {}).get("nodes", []) or []
    leases: dict[str, str] = {}
    for node in nodes:
        name = str(node.get("key", "")).removeprefix(f"{prefix}/subnets/")
        subnet = name.replace("-", "/")
        try:
            public_ip = str(json.loads(node.get("value") or "{}").get("PublicIP", ""))
        except ValueError:
            public_ip = ""
        leases[subnet] = public_ip
    return leases


def parse_docker0(text: str) -> ipaddress.IPv4Interface | None:
    """docker0's IPv4 interface from `ip -o -4 addr show dev docker0`."""
    words = text.split()
    for i, word in enumerate(words[:-1]):
        if word == "inet":
            try:
                return ipaddress.IPv4Interface(words[i + 1])
            except ValueError:
                return None
    return None


# ---------------------------------------------------------------------------------------------
# Evaluate (pure)


@dataclass(frozen=True)
class _Context:
    cluster: Cluster
    facts: Mapping[str, HostFacts]

    def reachable(self, name: str) -> bool:
        facts = self.facts.get(name)
        return facts is not None and facts.error is None

    def output(self, host: str, probe: str) -> Output | None:
        facts = self.facts.get(host)
        return None if facts is None else facts.outputs.get(probe)

    def units(self, host: Host) -> dict[str, UnitState]:
        output = self.output(host.name, "units")
        if output is None or output.exit_code != 0:
            return {}
        return parse_units(output.stdout, host_units(host))

    def unit(self, host: Host, unit: str) -> UnitState | None:
        return self.units(host).get(unit)

    def installed(self, host: Host, unit: str) -> bool:
        """Unknown unit state counts as installed: a check then fails rather than passing."""
        state = self.unit(host, unit)
        return state is None or state.installed


def _not_installed(host: Host, check: str, unit: str) -> Check:
    return Check(host.name, check, "skip", f"{unit} is not installed on this host")


def _flannel_absent(ctx: _Context, host: Host, check: str) -> Check:
    """flanneld is missing: on the Debian lab with Kubernetes 1.20 say plainly that flannel
    itself does not run there and what stands in for it."""
    s = ctx.cluster.settings
    if s.k8s_os_family == "debian" and s.kube_minor >= 20:
        return Check(
            host.name,
            check,
            "skip",
            "flannel is not running in the lab (no flanneld source or binary is reachable): "
            "pods use CNI bridge/host-local with a route per node subnet of "
            f"{s.flannel_network} instead",
        )
    return _not_installed(host, check, "flanneld")


def unit_check(host: Host, unit: str, state: UnitState | None, error: str = "") -> Check:
    name = f"unit:{unit}"
    if state is None:
        return Check(host.name, name, "fail", f"systemctl show failed: {error or 'no output'}")
    if not state.installed:
        return _not_installed(host, name, unit)
    if state.load == "masked":
        return Check(host.name, name, "fail", f"{unit} is masked: systemctl unmask {unit}")
    if state.load != "loaded":
        return Check(host.name, name, "fail", f"unit file {state.load}: systemctl status {unit}")
    if state.active == "active":
        boot = "" if state.file_state in ("enabled", "static", "") else ", not enabled at boot"
        return Check(host.name, name, "pass", f"active ({state.sub}){boot}")
    return Check(
        host.name,
        name,
        "fail",
        f"{unit} is {state.active} ({state.sub}); see journalctl -u {unit}",
    )


def etcd_health_check(ctx: _Context, host: Host) -> Check:
    name = "etcd:health"
    if not ctx.installed(host, "etcd"):
        return _not_installed(host, name, "etcd")
    output = ctx.output(host.name, "etcd-health")
    url = _etcd_url(ctx.cluster, host)
    if output is not None and output.exit_code == 0 and " is healthy" in output.text:
        line = next(x for x in output.text.splitlines() if " is healthy" in x)
        return Check(host.name, name, "pass", line.strip())
    problem = etcdctl_problem(output) if output is not None else "no output"
    reach = ctx.output(host.name, "etcd-reach")
    if reach is not None and reach.exit_code not in (0, 127):
        problem += f" ({_curl_error(reach)})"
    return Check(
        host.name,
        name,
        "fail",
        f"etcd member {host.name} at {url} is unhealthy: {problem}; see journalctl -u etcd",
    )


def _cluster_ids(ctx: _Context) -> dict[str, int]:
    """The etcd cluster ID each member reports, by host."""
    ids: dict[str, int] = {}
    for member in ctx.cluster.etcd:
        output = ctx.output(member, "etcd-members")
        if output is None or output.exit_code != 0:
            continue
        try:
            ids[member] = int(json.loads(output.stdout)["header"]["cluster_id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def etcd_members_check(ctx: _Context, host: Host) -> Check:
    """The membership this member sees: count and names as in the inventory's etcd group, and
    the same cluster as the other members (a stale data dir bootstraps a cluster of its own)."""
    name = "etcd:members"
    if not ctx.installed(host, "etcd"):
        return _not_installed(host, name, "etcd")
    output = ctx.output(host.name, "etcd-members")
    url = _etcd_url(ctx.cluster, host)
    if output is None or output.exit_code != 0:
        problem = etcdctl_problem(output) if output is not None else "no output"
        return Check(host.name, name, "fail", f"cannot list etcd members at {url}: {problem}")
    try:
        members = json.loads(output.stdout).get("members", [])
        names = [str(m.get("name", "")) for m in members]
    except (ValueError, AttributeError):
        return Check(host.name, name, "fail", f"unreadable etcdctl member list: {output.text}")
    expected = list(ctx.cluster.etcd)
    problems = []
    if len(names) != len(expected):
        problems.append(f"{len(names)} members, the inventory's etcd group has {len(expected)}")
    missing = sorted(set(expected) - set(names))
    extra = sorted(n for n in set(names) - set(expected) if n)
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if extra:
        problems.append(f"not in the inventory: {', '.join(extra)}")
    if "" in names:
        problems.append("a member was added but never started (it has no name yet)")
    ids = _cluster_ids(ctx)
    if host.name in ids and len(set(ids.values())) > 1:
        common, _ = Counter(ids.values()).most_common(1)[0]
        if ids[host.name] != common:
            others = ", ".join(h for h, i in ids.items() if i == common)
            problems.append(
                f"this member is in another etcd cluster than {others}: its data dir holds"
                " another cluster; empty it and re-add the member (etcdctl member remove/add,"
                " then start it with ETCD_INITIAL_CLUSTER_STATE=existing)"
            )
    if problems:
        return Check(host.name, name, "fail", "; ".join(problems))
    order = {member: i for i, member in enumerate(expected)}
    listed = ", ".join(sorted(names, key=lambda n: order.get(n, len(order))))
    return Check(host.name, name, "pass", f"{len(names)} members: {listed}")


@dataclass(frozen=True)
class _Flannel:
    """What etcd says about flannel, read on the first etcd member that answers."""

    config_check: Check | None
    leases: dict[str, str] | None
    why_not: str


def _flannel(ctx: _Context) -> _Flannel:
    s = ctx.cluster.settings
    key = f"{s.flannel_etcd_prefix}/config"
    name = "flannel:network-key"
    candidates = [h for h in ctx.cluster.etcd if ctx.reachable(h)]
    if not candidates:
        return _Flannel(None, None, "no etcd member is reachable over SSH")
    installed = [h for h in candidates if ctx.installed(ctx.cluster.host(h), "etcd")]
    if not installed:
        why = f"etcd is not installed on {', '.join(candidates)}"
        return _Flannel(Check(candidates[0], name, "skip", why), None, why)
    answered = [
        h
        for h in installed
        if (out := ctx.output(h, "flannel-config")) and split_http(out)[0] is not None
    ]
    if not answered:
        host = ctx.cluster.host(installed[0])
        out = ctx.output(host.name, "flannel-config")
        error = _curl_error(out) if out is not None else "no output"
        detail = f"cannot read {key} from etcd at {_etcd_url(ctx.cluster, host)}: {error}"
        why = "no etcd member answered (see flannel:network-key)"
        return _Flannel(Check(host.name, name, "fail", detail), None, why)
    source = answered[0]
    url = _etcd_url(ctx.cluster, ctx.cluster.host(source))
    config_out = ctx.output(source, "flannel-config")
    assert config_out is not None
    check = network_key_check(
        source, key, url, *split_http(config_out), s.flannel_network, s.flannel_backend
    )
    leases: dict[str, str] | None = None
    why = ""
    subnets_out = ctx.output(source, "flannel-subnets")
    code, body = split_http(subnets_out) if subnets_out else (None, "")
    if code == 200:
        try:
            leases = parse_leases(body, s.flannel_etcd_prefix)
        except (ValueError, AttributeError):
            why = f"unreadable answer from {url} for {s.flannel_etcd_prefix}/subnets"
    elif code == 404 and '"errorCode":100' in body.replace(" ", ""):
        leases = {}  # no flanneld has registered yet
    else:
        why = f"cannot read {s.flannel_etcd_prefix}/subnets from {url} (HTTP {code})"
    return _Flannel(check, leases, why)


def network_key_check(
    host: str,
    key: str,
    url: str,
    code: int | None,
    body: str,
    network: str,
    backend: str,
) -> Check:
    name = "flannel:network-key"
    if code == 404:
        try:
            error = json.loads(body)
        except ValueError:
            error = None
        if isinstance(error, dict) and error.get("errorCode") == 100:
            return Check(
                host,
                name,
                "fail",
                f'{key} is missing from etcd (flanneld fails with "Key not found"): run'
                " `k8s-provision up` again, or store it:"
                f' ETCDCTL_API=2 etcdctl mk {key} \'{{"Network":"{network}"}}\'',
            )
        return Check(
            host,
            name,
            "fail",
            f"etcd's v2 API is off at {url} (flannel 0.7 reads only v2): set"
            " ETCD_ENABLE_V2=true in etcd's configuration and restart etcd",
        )
    if code != 200:
        return Check(host, name, "fail", f"{url} answered HTTP {code} for {key}: {body[:200]}")
    try:
        value = json.loads(json.loads(body)["node"]["value"])
        found_network = str(value["Network"])
        found_backend = str((value.get("Backend") or {}).get("Type", "udp"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Check(host, name, "fail", f"{key} holds no valid flannel config: {body[:200]}")
    if found_network != network:
        return Check(
            host,
            name,
            "fail",
            f"{key} has Network {found_network}, the inventory's flannel_network is {network}",
        )
    if found_backend != backend:
        return Check(
            host,
            name,
            "fail",
            f"{key} has Backend {found_backend}, the inventory's flannel_backend is {backend}",
        )
    return Check(host, name, "pass", f"{key}: Network {found_network}, Backend {found_backend}")


def lease_check(
    host: Host, leases: Mapping[str, str] | None, why_not: str, prefix: str, network: str
) -> Check:
    name = "flannel:lease"
    if leases is None:
        return Check(host.name, name, "skip", f"subnet leases unknown: {why_not}")
    mine = sorted(subnet for subnet, ip in leases.items() if ip == host.ip)
    if not mine:
        return Check(
            host.name,
            name,
            "fail",
            f"no subnet lease for {host.ip} under {prefix}/subnets: flanneld on {host.name} has"
            " not registered; see journalctl -u flanneld",
        )
    flannel_net = ipaddress.ip_network(network)
    outside = [s for s in mine if not _subnet_of(s, flannel_net)]
    if outside:
        return Check(
            host.name,
            name,
            "fail",
            f"lease {', '.join(outside)} for {host.ip} is outside flannel_network {network}",
        )
    return Check(host.name, name, "pass", f"lease {', '.join(mine)} for {host.ip}")


def _subnet_of(subnet: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        candidate = ipaddress.ip_network(subnet)
    except ValueError:
        return False
    return (
        isinstance(candidate, ipaddress.IPv4Network)
        and isinstance(network, ipaddress.IPv4Network)
        and candidate.subnet_of(network)
    )


def docker0_check(
    host: Host, output: Output | None, network: str, leases: Mapping[str, str] | None
) -> Check:
    """docker0 must sit in this host's flannel lease (a /24 of the flannel network); docker's
    default 172.17.0.1/16 means docker started before flanneld wrote its options."""
    name = "docker0:subnet"
    if output is None or output.exit_code != 0 or not output.stdout.strip():
        why = output.text if output is not None else "no output"
        return Check(
            host.name,
            name,
            "fail",
            f"docker0 has no IPv4 address ({why}); see systemctl status docker",
        )
    iface = parse_docker0(output.stdout)
    if iface is None:
        return Check(host.name, name, "fail", f"cannot read docker0's address: {output.stdout}")
    flannel_net = ipaddress.IPv4Network(network)
    mine = sorted(s for s, ip in (leases or {}).items() if ip == host.ip)
    restart = "docker started before flanneld: restart docker after flanneld"
    if not iface.network.subnet_of(flannel_net) or iface.network == flannel_net:
        return Check(
            host.name,
            name,
            "fail",
            f"docker0 has {iface}, not inside a lease of {network}: {restart}",
        )
    if mine and str(iface.network) not in mine:
        return Check(
            host.name,
            name,
            "fail",
            f"docker0 has {iface}, but this host's flannel lease is {', '.join(mine)}: {restart}",
        )
    where = f"this host's lease {mine[0]}" if mine else f"flannel network {network}"
    return Check(host.name, name, "pass", f"docker0 {iface} is inside {where}")


def _api_down(
    ctx: _Context, master: Host, name: str, healthz: Output | None, *, for_kubectl: bool
) -> Check | None:
    """The row for an API check when nothing answers on the API port, else None: fail when
    kube-apiserver is installed, skip with the reason when it is not."""
    if healthz is not None and split_http(healthz)[0] is not None:
        return None
    api = f"{master.ip}:{ctx.cluster.settings.kube_api_port}"
    if not ctx.installed(master, "kube-apiserver"):
        return Check(
            master.name,
            name,
            "skip",
            f"kube-apiserver is not installed on this host and nothing answers on {api}",
        )
    if for_kubectl:
        return Check(
            master.name,
            name,
            "fail",
            f"cannot run: nothing answers on {api} (see apiserver:healthz)",
        )
    error = _curl_error(healthz) if healthz is not None else "no output"
    return Check(
        master.name,
        name,
        "fail",
        f"nothing answers on {api}: {error}; see journalctl -u kube-apiserver",
    )


def healthz_check(ctx: _Context, master: Host) -> Check:
    name = "apiserver:healthz"
    output = ctx.output(master.name, "healthz")
    down = _api_down(ctx, master, name, output, for_kubectl=False)
    if down is not None:
        return down
    assert output is not None
    code, body = split_http(output)
    url = f"{_api_url(ctx.cluster)}/healthz"
    if code == 200 and body.strip() == "ok":
        return Check(master.name, name, "pass", f"{url}: ok")
    text = " ".join(body.split())[:300]
    return Check(master.name, name, "fail", f"{url} answered HTTP {code}: {text}")


def _kubectl_json(
    ctx: _Context, master: Host, name: str, probe: str, what: str
) -> Check | dict[str, Any]:
    down = _api_down(ctx, master, name, ctx.output(master.name, "healthz"), for_kubectl=True)
    if down is not None:
        return down
    output = ctx.output(master.name, probe)
    if output is None:
        return Check(master.name, name, "fail", "no output")
    if output.exit_code == 127:
        return Check(master.name, name, "fail", "kubectl is not installed on this host")
    if output.exit_code == 124:
        return Check(
            master.name, name, "fail", f"kubectl get {what} timed out after {PROBE_TIMEOUT} s"
        )
    if output.exit_code != 0:
        lines = [line for line in output.stderr.splitlines() if line.strip()] or [output.text]
        return Check(master.name, name, "fail", f"kubectl get {what} failed: {lines[-1]}")
    try:
        data = json.loads(output.stdout)
    except ValueError:
        return Check(master.name, name, "fail", f"kubectl get {what} printed no JSON")
    if not isinstance(data, dict):
        return Check(master.name, name, "fail", f"kubectl get {what} printed no object")
    return data


def componentstatus_check(host: str, data: Mapping[str, Any], etcd_members: int) -> Check:
    """Every component Healthy, and each expected one reported: scheduler, controller-manager
    and one etcd-N per etcd server the apiserver uses."""
    name = "kubectl:cs"
    healthy: list[str] = []
    unhealthy: list[str] = []
    for item in data.get("items") or []:
        component = str((item.get("metadata") or {}).get("name", "?"))
        condition: dict[str, Any] = next(
            (c for c in item.get("conditions") or [] if c.get("type") == "Healthy"), {}
        )
        if condition.get("status") == "True":
            healthy.append(component)
            continue
        why = (
            "; ".join(str(condition[k]) for k in ("message", "error") if condition.get(k))
            or f"Healthy={condition.get('status', 'missing')}"
        )
        unhealthy.append(f"{component} Unhealthy ({why})")
    expected = ["controller-manager", "scheduler", *(f"etcd-{i}" for i in range(etcd_members))]
    reported = set(healthy) | {u.split(" ", 1)[0] for u in unhealthy}
    missing = [c for c in expected if c not in reported]
    problems = unhealthy + ([f"not reported: {', '.join(missing)}"] if missing else [])
    if problems:
        return Check(host, name, "fail", "; ".join(problems))
    return Check(host, name, "pass", f"Healthy: {', '.join(healthy)}")


def nodes_check(host: str, data: Mapping[str, Any], expected: Iterable[str]) -> Check:
    """Every inventory node (by kube_node_name) registered and Ready, with no pressure."""
    name = "kubectl:nodes"
    by_name = {
        str((item.get("metadata") or {}).get("name")): item for item in data.get("items") or []
    }
    expected = list(expected)
    problems: list[str] = []
    for node in expected:
        item = by_name.get(node)
        if item is None:
            problems.append(
                f"{node} is not registered (its kubelet never reached the API; see"
                " journalctl -u kubelet on it)"
            )
            continue
        conditions = {c.get("type"): c for c in (item.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Ready", {})
        if ready.get("status") != "True":
            reason = ": ".join(str(ready[k]) for k in ("reason", "message") if ready.get(k))
            state = f"Ready={ready.get('status', 'missing')}"
            problems.append(f"{node} NotReady ({state}{', ' + reason if reason else ''})")
            continue
        for kind in NODE_PRESSURE_CONDITIONS:
            condition = conditions.get(kind, {})
            if condition.get("status") == "True":
                problems.append(f"{node} {kind} ({condition.get('message', '')})")
    extra = sorted(set(by_name) - set(expected))
    note = f"; also registered, not in the inventory: {', '.join(extra)}" if extra else ""
    if problems:
        return Check(host, name, "fail", "; ".join(problems) + note)
    return Check(host, name, "pass", f"Ready: {', '.join(expected)}{note}")


def insecure_port_check(ctx: _Context, master: Host) -> Check:
    name = "security:insecure-port"
    port = ctx.cluster.settings.kube_api_port
    if _secure_api(ctx.cluster):
        return Check(
            master.name,
            name,
            "pass",
            f"Kubernetes {ctx.cluster.settings.kube_version} has no insecure port: port {port}"
            " is TLS and needs a client certificate",
        )
    output = ctx.output(master.name, "listen")
    if output is None or output.exit_code != 0:
        # No ss: judge by what the inventory tells kube-apiserver to bind.
        address = ctx.cluster.settings.kube_api_address
        if is_loopback(address):
            return Check(master.name, name, "pass", f"kube_api_address is {address}")
        return Check(
            master.name,
            name,
            "warn",
            f"kube_api_address is {address}: anyone who reaches {master.ip}:{port} can use"
            " the API without credentials (firewall the port to the cluster hosts)",
        )
    bound = listeners(output.stdout, port)
    if not bound:
        return Check(master.name, name, "skip", f"nothing listens on port {port}")
    exposed = [a for a in bound if not is_loopback(a)]
    if not exposed:
        return Check(master.name, name, "pass", f"port {port} listens on loopback only")
    shown = ", ".join(f"{a}:{port}" for a in exposed)
    return Check(
        master.name,
        name,
        "warn",
        f"the insecure API port listens on {shown}: anyone who reaches {master.ip}:{port} can"
        " use the API without credentials (firewall the port to the cluster hosts)",
    )


def etcd_plaintext_check(ctx: _Context, host: Host) -> Check:
    name = "security:etcd-plaintext"
    if not ctx.installed(host, "etcd"):
        return _not_installed(host, name, "etcd")
    port = ctx.cluster.settings.etcd_client_port
    output = ctx.output(host.name, "listen")
    if output is None or output.exit_code != 0:
        return Check(host.name, name, "skip", "cannot list listening ports (ss failed)")
    bound = listeners(output.stdout, port)
    if not bound:
        return Check(host.name, name, "skip", f"nothing listens on port {port}")
    exposed = [a for a in bound if not is_loopback(a)]
    if not exposed:
        return Check(host.name, name, "pass", f"port {port} listens on loopback only")
    return Check(
        host.name,
        name,
        "warn",
        f"etcd's client port listens on {', '.join(f'{a}:{port}' for a in exposed)} without"
        " TLS: anyone who reaches it can read and change every key, including all cluster"
        " state",
    )


def evaluate(cluster: Cluster, facts: Mapping[str, HostFacts]) -> Report:
    """Turn every host's probe outputs into checks, grouped by host in inventory order."""
    ctx = _Context(cluster, facts)
    s = cluster.settings
    flannel = _flannel(ctx)
    checks: list[Check] = []
    for host in cluster.hosts:
        host_facts = facts.get(host.name)
        if host_facts is None or host_facts.error is not None:
            error = host_facts.error if host_facts is not None else "not checked"
            checks.append(Check(host.name, "ssh", "fail", error or "unreachable"))
            continue
        user = host.connection.user or "root"
        checks.append(
            Check(host.name, "ssh", "pass", f"{user}@{host.address}:{host.connection.port or 22}")
        )
        units = ctx.units(host)
        unit_output = ctx.output(host.name, "units")
        unit_error = "no state reported for this unit"
        if unit_output is not None and unit_output.exit_code != 0:
            unit_error = unit_output.stderr.strip() or f"exit {unit_output.exit_code}"
        checks += [unit_check(host, u, units.get(u), unit_error) for u in host_units(host)]
        if host.is_etcd:
            checks += [etcd_health_check(ctx, host), etcd_members_check(ctx, host)]
        if flannel.config_check is not None and flannel.config_check.host == host.name:
            checks.append(flannel.config_check)
        if host.runs_flannel:
            if ctx.installed(host, "flanneld"):
                checks.append(
                    lease_check(
                        host,
                        flannel.leases,
                        flannel.why_not,
                        s.flannel_etcd_prefix,
                        s.flannel_network,
                    )
                )
            else:
                checks.append(_flannel_absent(ctx, host, "flannel:lease"))
        if host.is_node:
            if ctx.installed(host, "docker"):
                checks.append(
                    docker0_check(
                        host,
                        ctx.output(host.name, "docker0"),
                        s.flannel_network,
                        flannel.leases,
                    )
                )
            else:
                checks.append(_not_installed(host, "docker0:subnet", "docker"))
        if host.is_master:
            checks.append(healthz_check(ctx, host))
            cs = _kubectl_json(ctx, host, "kubectl:cs", "kubectl-cs", "componentstatuses")
            checks.append(
                cs
                if isinstance(cs, Check)
                else componentstatus_check(host.name, cs, len(cluster.etcd))
            )
            nodes = _kubectl_json(ctx, host, "kubectl:nodes", "kubectl-nodes", "nodes")
            expected = [cluster.host(n).kube_node_name for n in cluster.nodes]
            checks.append(
                nodes if isinstance(nodes, Check) else nodes_check(host.name, nodes, expected)
            )
            checks.append(insecure_port_check(ctx, host))
        if host.is_etcd:
            checks.append(etcd_plaintext_check(ctx, host))
    return Report(tuple(checks))


def failure_summary(report: Report) -> str:
    """One line for the error the CLI prints when checks failed."""
    failed = report.failed
    listed = ", ".join(f"{c.host} {c.check}" for c in failed[:6])
    more = f" and {len(failed) - 6} more" if len(failed) > 6 else ""
    noun = "check" if len(failed) == 1 else "checks"
    return f"verify: {len(failed)} {noun} failed: {listed}{more}"
