"""Evaluate (pure): every host's probe outputs into checks, grouped by host in inventory
order. Some checks combine hosts: flannel leases are read from etcd on one member and judged
for every flannel host."""

from __future__ import annotations

from collections.abc import Mapping

from k8s_provision import facts, service_state
from k8s_provision.model import Cluster
from k8s_provision.pki import check as certs
from k8s_provision.probes import HostFacts, network, systemd
from k8s_provision.report import Check, Report
from k8s_provision.verify.api import (
    componentstatus_check,
    healthz_check,
    kubectl_lists,
    nodes_check,
)
from k8s_provision.verify.context import Context, not_installed
from k8s_provision.verify.etcd import etcd_health_check, etcd_members_check
from k8s_provision.verify.flannel import (
    docker0_check,
    flannel_absent,
    flannel_state,
    lease_check,
)
from k8s_provision.verify.security import etcd_plaintext_check, insecure_port_check
from k8s_provision.verify.units import unit_check


def evaluate(cluster: Cluster, collected: Mapping[str, HostFacts]) -> Report:
    """Turn every host's probe outputs into checks, grouped by host in inventory order."""
    ctx = Context(cluster, collected)
    s = cluster.settings
    flannel = flannel_state(ctx)
    checks: list[Check] = []
    for host in cluster.hosts:
        host_facts = collected.get(host.name)
        if host_facts is None or host_facts.error is not None:
            error = host_facts.error if host_facts is not None else "not checked"
            checks.append(Check(host.name, "ssh", "fail", error or "unreachable"))
            continue
        user = host.connection.user or "root"
        checks.append(
            Check(host.name, "ssh", "pass", f"{user}@{host.address}:{host.connection.port or 22}")
        )
        units = ctx.units(host)
        unit_output = ctx.output(host.name, systemd.units(facts.host_units(host)).name)
        unit_error = "no state reported for this unit"
        if unit_output is not None and unit_output.exit_code != 0:
            unit_error = unit_output.stderr.strip() or f"exit {unit_output.exit_code}"
        checks += [unit_check(host, u, units.get(u), unit_error) for u in facts.host_units(host)]
        config_paths = service_state.host_unit_paths(cluster, host)
        config_output = ctx.output(host.name, "config-state")
        stale = service_state.config_check(
            host.name,
            {u: state.active == "active" for u, state in units.items()},
            config_paths,
            None if config_output is None else config_output.stdout,
            {u: state.started for u, state in units.items()},
        )
        checks += [stale] if stale else []
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
                checks.append(flannel_absent(ctx, host, "flannel:lease"))
        if host.is_node:
            if ctx.installed(host, "docker"):
                checks.append(
                    docker0_check(
                        host,
                        ctx.read(host.name, network.docker0()),
                        s.flannel_network,
                        flannel.leases,
                    )
                )
            else:
                checks.append(not_installed(host, "docker0:subnet", "docker"))
        if host.is_master:
            checks.append(healthz_check(ctx, host))
            lists = kubectl_lists(
                ctx, host, {"componentstatuses": "kubectl:cs", "nodes": "kubectl:nodes"}
            )
            cs, nodes = lists["componentstatuses"], lists["nodes"]
            checks.append(
                cs
                if isinstance(cs, Check)
                else componentstatus_check(host.name, cs, len(cluster.etcd))
            )
            expected = [cluster.host(n).kube_node_name for n in cluster.nodes]
            checks.append(
                nodes if isinstance(nodes, Check) else nodes_check(host.name, nodes, expected)
            )
            checks.append(insecure_port_check(ctx, host))
        if host.is_etcd:
            checks.append(etcd_plaintext_check(ctx, host))
        if cluster.settings.tls:
            # The certs check of every PKI file, as one row per host (`certs check` lists
            # them one by one): warn under 30 days, fail when expired or mismatched.
            files = certs.file_checks(cluster, host, host_facts, facts.pki_state_dir(cluster))
            if files:
                checks.append(certs.summary_check(host, files))
    return Report(tuple(checks))
