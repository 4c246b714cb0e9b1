"""The phases operations are made of. Each talks to hosts through `ctx.transport` or runs a
shipped playbook through the runner, and prints only through `ctx.out`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from k8s_provision import fastpath, lifecycle, membership, provision, runner, verify
from k8s_provision.errors import OperationFailed
from k8s_provision.lock import LOCK_DIR, ClusterLock
from k8s_provision.model import Host
from k8s_provision.phases.manager import Context
from k8s_provision.report import counted


def _named(ctx: Context) -> list[Host]:
    return lifecycle.named_hosts(ctx.cluster, ctx.hosts)


@dataclass
class TakeLock:
    """One operation at a time per cluster; released by the manager on every way out. A dry
    run takes it too: what it reads must not change under it."""

    operation: str
    lock_dir: str = LOCK_DIR
    title: str = "lock the cluster"

    def should_run(self, ctx: Context) -> bool:
        return True

    def run(self, ctx: Context) -> None:
        held = ClusterLock(
            ctx.cluster.master,
            ctx.transport,
            self.operation,
            lock_dir=self.lock_dir,
            on_note=ctx.out.note,
        )
        held.acquire(ctx.lock_timeout)
        ctx.cleanups.append(held.release)

    dry_run = run


def _converging(ctx: Context) -> bool:
    """site.yml (and its preflight) runs unless the fast path found nothing to do."""
    return ctx.fastpath is None or ctx.fastpath.run_playbook


@dataclass
class FastPath:
    """One SSH round per host compares everything site.yml converges with what the inventory
    and templates say; when all matches, preflight and site.yml are skipped. Differences
    narrow site.yml to the differing hosts, or keep every host when one is cluster-wide. `up`
    also reads verify's probes in the same round, so a matching cluster is read once."""

    with_verify: bool = True
    title: str = "fast path"

    def should_run(self, ctx: Context) -> bool:
        return True

    def run(self, ctx: Context) -> None:
        cluster = ctx.cluster
        with ctx.out.status("fast path: reading every host's fingerprint over SSH"):
            decision = fastpath.decide(
                cluster,
                full=ctx.full,
                limit=ctx.limit,
                hosts=provision.limited_hosts(cluster, ctx.limit),
                also=(lambda host: verify.probes_for(cluster, host)) if self.with_verify else None,
            )
        ctx.out.note(decision.message)
        if decision.run_playbook and decision.result is not None:
            for line in fastpath.describe(decision.result):
                ctx.out.note(f"  {line}")
        ctx.fastpath = decision
        ctx.limit = decision.limit

    dry_run = run


@dataclass
class Preflight:
    """Reachable hosts, sudo, OS family, Python, clocks: nothing is changed when it fails.
    `named` preflights only the hosts named on the command line (add-node)."""

    named: bool = False
    title: str = "preflight"

    def should_run(self, ctx: Context) -> bool:
        return _converging(ctx)

    def run(self, ctx: Context) -> None:
        hosts = (
            _named(ctx)
            if self.named
            else [ctx.cluster.host(n) for n in provision.limited_hosts(ctx.cluster, ctx.limit)]
        )
        with ctx.out.status("preflight: checking every host over SSH"):
            warnings = provision.check_hosts(ctx.cluster, hosts)
        for check in warnings:
            ctx.out.note(f"warning: {check.host}: {check.check}: {check.detail}", "yellow")
        ctx.out.note(f"preflight: {counted(len(hosts), 'host')} ready")

    dry_run = run


@dataclass
class Converge:
    """site.yml; its dry run is a check-mode run with diffs whose changes are the plan."""

    title: str = "converge (site.yml)"

    def should_run(self, ctx: Context) -> bool:
        return _converging(ctx)

    def run(self, ctx: Context) -> None:
        hosts = provision.limited_hosts(ctx.cluster, ctx.limit)
        with ctx.out.playbook("site.yml", hosts) as progress:
            ctx.result = runner.run_checked(
                "site.yml",
                ctx.inventory_path,
                replace(ctx.options, on_event=progress),
                limit=ctx.limit,
            )
        ctx.out.note(
            f"site.yml: ok on {counted(len(ctx.result.stats), 'host')},"
            f" {counted(ctx.result.changed(), 'change')};"
            f" log: {ctx.result.log_path}"
        )

    def dry_run(self, ctx: Context) -> None:
        ctx.result = runner.run_checked(
            "site.yml", ctx.inventory_path, ctx.options, limit=ctx.limit, check=True, diff=True
        )
        ctx.changes = lifecycle.changes_from_events(ctx.result.events)


@dataclass
class Verify:
    title: str = "verify"

    def should_run(self, ctx: Context) -> bool:
        return True

    def run(self, ctx: Context) -> None:
        decision = ctx.fastpath
        with ctx.out.status("verify: checking the cluster"):
            if decision is not None and not decision.run_playbook and decision.result is not None:
                # Nothing ran since the fast path read verify's probes in its round.
                ctx.health = verify.evaluate(ctx.cluster, decision.result.facts)
            else:
                ctx.health = verify.verify(ctx.cluster)
        ctx.out.report(ctx.health)
        if not ctx.health.ok:
            raise OperationFailed(
                verify.failure_summary(ctx.health),
                details=[f"run `k8s-provision diagnose {ctx.inventory_path}` for causes and fixes"],
            )

    def dry_run(self, ctx: Context) -> None:
        """Nothing changed, so nothing to prove."""


@dataclass
class CheckMemberAdd:
    """New etcd members only into a healthy cluster that keeps quorum after each add."""

    title: str = "check etcd before adding members"

    def should_run(self, ctx: Context) -> bool:
        return any(h.is_etcd for h in _named(ctx))

    def run(self, ctx: Context) -> None:
        joining = [h for h in _named(ctx) if h.is_etcd]
        through = [ctx.cluster.host(n) for n in ctx.cluster.etcd if n not in set(ctx.hosts)]
        seen = membership.observe(ctx.cluster, ctx.transport, through)
        membership.check_add(seen, ctx.cluster, joining)
        ctx.out.note(f"etcd: {len(seen.members)} members healthy; quorum holds after the add")

    dry_run = run


def _remaining(ctx: Context) -> list[Host]:
    return [ctx.cluster.host(n) for n in ctx.cluster.etcd if n not in set(ctx.hosts)]


@dataclass
class CheckRemove:
    """What may leave: never the master or the last etcd member; etcd members only while the
    rest stays healthy and keeps quorum (a dead leaving member needs --force)."""

    title: str = "check what may leave"

    def should_run(self, ctx: Context) -> bool:
        return True

    def run(self, ctx: Context) -> None:
        hosts = _named(ctx)
        if ctx.cluster.master in hosts:
            raise OperationFailed(
                f"{ctx.cluster.master.name} is the master; remove-node cannot remove it"
            )
        if not any(h.is_etcd for h in hosts):
            return
        if not _remaining(ctx):
            raise OperationFailed("that would remove every etcd member; use `reset` to tear down")
        seen = membership.observe(ctx.cluster, ctx.transport, _remaining(ctx))
        leaving = [m for h in hosts for m in seen.find(ctx.cluster, h)]
        membership.check_remove(seen, leaving, force=ctx.force)

    dry_run = run


@dataclass
class DeleteKubeNodes:
    title: str = "delete the nodes from Kubernetes"

    def should_run(self, ctx: Context) -> bool:
        return any(h.is_node for h in _named(ctx))

    def run(self, ctx: Context) -> None:
        for host in _named(ctx):
            if host.is_node:
                ctx.removals.append(lifecycle.delete_kube_node(ctx.cluster, ctx.transport, host))

    def dry_run(self, ctx: Context) -> None:
        for host in _named(ctx):
            if host.is_node:
                ctx.out.note(f"would delete node {host.kube_node_name} where an API answers")


@dataclass
class RemoveMembers:
    """One `member remove` at a time, each through a member that answers right then; matched
    by peer URL and ID, so a member that never started goes too."""

    title: str = "remove the etcd members"

    def should_run(self, ctx: Context) -> bool:
        return any(h.is_etcd for h in _named(ctx))

    def run(self, ctx: Context) -> None:
        for host in _named(ctx):
            if not host.is_etcd:
                continue
            seen = membership.observe(ctx.cluster, ctx.transport, _remaining(ctx))
            found = seen.find(ctx.cluster, host)
            if not found:
                ctx.removals.append(lifecycle.Removal(host.name, "etcd", "not a member any more"))
            for member in found:
                # Asked again each time: the previous removal changed the list and the leader.
                seen = membership.observe(ctx.cluster, ctx.transport, _remaining(ctx))
                detail = membership.remove(ctx.cluster, ctx.transport, seen, member)
                ctx.removals.append(lifecycle.Removal(host.name, "etcd", detail))

    def dry_run(self, ctx: Context) -> None:
        seen = membership.observe(ctx.cluster, ctx.transport, _remaining(ctx))
        for host in _named(ctx):
            for member in seen.find(ctx.cluster, host):
                ctx.out.note(f"would remove etcd member {member.describe()}")


@dataclass
class ResetHosts:
    """reset.yml on `ctx.limit` (every host when None); `named` limits it to ctx.hosts."""

    named: bool = False
    title: str = "reset (reset.yml)"

    def should_run(self, ctx: Context) -> bool:
        return True

    def run(self, ctx: Context) -> None:
        limit = ",".join(ctx.hosts) if self.named else ctx.limit
        hosts = ctx.hosts if self.named else [h.name for h in ctx.cluster.hosts]
        with ctx.out.playbook("reset.yml", hosts) as progress:
            ctx.result = runner.run_checked(
                "reset.yml",
                ctx.inventory_path,
                replace(ctx.options, on_event=progress),
                limit=limit,
                extra_vars=lifecycle.RESET_CONFIRMED,
            )
        if self.named:
            ctx.removals += [
                lifecycle.Removal(h, "reset", "services stopped, configuration and data removed")
                for h in ctx.hosts
            ]

    def dry_run(self, ctx: Context) -> None:
        ctx.out.note(f"would run reset.yml on {', '.join(ctx.hosts) or ctx.limit or 'all hosts'}")
