"""The fast-path check: one SSH round per host, all hosts in parallel, through the probes'
shared collector, and the verdict on whether site.yml has anything to do."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from k8s_provision import facts, pki, ssh
from k8s_provision.fastpath.compare import Difference, differences, probes_for
from k8s_provision.fastpath.expected import Expected, expected
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import HostFacts, Probe, collect
from k8s_provision.probes.collector import Plan
from k8s_provision.report import counted

SCRIPT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Options:
    """`hosts`: the host names to check (a --limit already resolved), None for every host.
    `also`: more probes to run in the same script (verify's, so `up` on a converged cluster
    reads each host once); their outputs are in `FastPathResult.facts`."""

    hosts: tuple[str, ...] | None = None
    connect_timeout: float = ssh.CONNECT_TIMEOUT
    also: Plan | None = None


@dataclass(frozen=True)
class FastPathResult:
    checked: tuple[str, ...]
    differences: tuple[Difference, ...]
    elapsed: float
    facts: Mapping[str, HostFacts] = field(default_factory=dict)  # every probe's output

    @property
    def matches(self) -> bool:
        return not self.differences

    @property
    def differing_hosts(self) -> tuple[str, ...]:
        return tuple(sorted({d.host for d in self.differences}))

    @property
    def cluster_wide(self) -> bool:
        return any(d.cluster_wide for d in self.differences)

    @property
    def limit(self) -> str | None:
        """The --limit for site.yml: the differing hosts; None (every host) when a difference
        is cluster-wide."""
        if self.matches or self.cluster_wide:
            return None
        return ",".join(self.differing_hosts)


def check(cluster: Cluster, options: Options | None = None) -> FastPathResult:
    """Compare every (or each chosen) host with what site.yml would leave there."""
    options = options or Options()
    started = time.monotonic()
    names = set(options.hosts) if options.hosts is not None else {h.name for h in cluster.hosts}
    if cluster.settings.tls:
        # Once for the cluster, as the playbook's context lookup does: a leaf the inventory
        # changed (a new address) is signed again, and the hosts are compared with it.
        pki.ensure_pki(cluster, facts.pki_state_dir(cluster))
    specs = {h.name: expected(cluster, h) for h in cluster.hosts if h.name in names}

    def plan(host: Host) -> Sequence[Probe[Any]]:
        probes = probes_for(cluster, host, specs[host.name])
        extra = options.also(host) if options.also else []
        # A probe both ask for (the etcd member list) runs once.
        return list({p.name: p for p in [*extra, *probes]}.values())

    chosen = replace(cluster, hosts=tuple(h for h in cluster.hosts if h.name in names))
    collections = collect(
        chosen,
        plan,
        what="fast-path",
        script_timeout=SCRIPT_TIMEOUT,
        connect_timeout=options.connect_timeout,
    )
    found: list[Difference] = []
    for host in chosen.hosts:

        def spec_for(in_container: bool, host: Host = host) -> Expected:
            return (
                specs[host.name] if not in_container else expected(cluster, host, in_container=True)
            )

        found += differences(cluster, host, spec_for, collections[host.name].facts)
    return FastPathResult(
        tuple(h.name for h in chosen.hosts),
        tuple(found),
        time.monotonic() - started,
        # As verify reads them: a host whose script failed keeps only the error.
        {
            name: got.facts if got.facts.error is None else HostFacts(name, error=got.facts.error)
            for name, got in collections.items()
        },
    )


@dataclass(frozen=True)
class Decision:
    """Whether `up` and `plan` need site.yml, on which hosts, and the line that says why."""

    run_playbook: bool
    limit: str | None  # the --limit for site.yml
    message: str
    result: FastPathResult | None = None


def describe(result: FastPathResult, shown: int = 5) -> list[str]:
    """The differences as lines an operator reads, the first `shown` of them."""
    lines = [
        f"{d.host}: {d.kind} {d.item}: expected {d.expected}, found {d.found}"
        for d in result.differences[:shown]
    ]
    if len(result.differences) > shown:
        lines.append(f"... and {len(result.differences) - shown} more")
    return lines


def decide(
    cluster: Cluster,
    *,
    full: bool,
    limit: str | None,
    hosts: Sequence[str] | None = None,
    also: Plan | None = None,
) -> Decision:
    """The fast path's verdict for `up`/`plan`. `full` skips the check. A --limit the operator
    gave stays as given (`hosts`: the names it selects, checked); otherwise site.yml runs on
    the hosts that differ, or everywhere when a difference is cluster-wide."""
    if full:
        return Decision(True, limit, "fast path: skipped (--full)")
    result = check(cluster, Options(hosts=tuple(hosts) if hosts is not None else None, also=also))
    took = f"{counted(len(result.checked), 'host')} in {result.elapsed:.1f} s"
    if result.matches:
        return Decision(False, limit, f"fast path: the cluster already matches ({took})", result)
    chosen = limit if limit is not None else result.limit
    if limit is not None:
        where = f"--limit {limit}"
    elif result.cluster_wide:
        where = "every host (a cluster-wide difference)"
    else:
        where = ", ".join(result.differing_hosts)
    found = counted(len(result.differences), "difference")
    return Decision(True, chosen, f"fast path: {found} ({took}); site.yml runs on {where}", result)
