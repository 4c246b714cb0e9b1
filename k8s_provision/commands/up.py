"""`k8s-provision up`: validate, preflight, apply site.yml, verify."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console

from k8s_provision import fastpath, inventory, lab, provision, report, runner, verify
from k8s_provision.commands.options import limit_option, playbook_options, run_options
from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.model import Cluster
from k8s_provision.progress import PlaybookProgress


@click.command("up")
@click.argument(
    "inventory_path", metavar="[INVENTORY]", required=False, type=click.Path(path_type=Path)
)
@click.option("--lab", "use_lab", is_flag=True, help="Provision the local lab (started if needed).")
@click.option(
    "--nodes",
    type=click.IntRange(1, lab.MAX_NODES),
    default=2,
    show_default=True,
    help="With --lab: the number of nodes besides the master.",
)
@click.option(
    "--install-deps", is_flag=True, help="With --lab: apt-get install the lab's tools when missing."
)
@limit_option
@click.option(
    "--full", is_flag=True, help="Run site.yml even when the fast path finds nothing to change."
)
@playbook_options
def command(
    inventory_path: Path | None,
    use_lab: bool,
    nodes: int,
    install_deps: bool,
    limit: str | None,
    full: bool,
    forks: int | None,
    verbosity: int,
    log_dir: Path,
    ask_become_pass: bool,
) -> None:
    """Provision the cluster described by INVENTORY and prove it healthy.

    \b
    1. validate the inventory (exit 2 and every problem listed when it is wrong);
       the fast path reads a fingerprint of every host in one SSH round: when the cluster
       already matches, steps 2 and 3 are skipped (--full runs them anyway); otherwise they
       run on the hosts that differ, or on all when a difference is cluster-wide;
    2. preflight every host over SSH, in parallel: reachable, root or working sudo, the OS
       family the inventory says, a Python the installed ansible-core can manage, clocks
       within 5 s, distinct machine ids; nothing is changed when this fails;
    3. run playbooks/site.yml with live progress; the full Ansible output goes to a log file
       whose path is printed; a failed task is named with host, task and error;
    4. verify the cluster (as `k8s-provision verify`) and print the report.

    With --lab, INVENTORY is the local lab's, which is started first (see `k8s-provision lab`).
    Exit 0 when everything passed, 1 when a host, task or check failed, 2 on usage errors.
    """
    if use_lab and inventory_path is not None:
        raise UsageError("give an INVENTORY or --lab, not both")
    if use_lab:
        inventory_path = lab.up(nodes=nodes, install_deps=install_deps).inventory
    elif inventory_path is None:
        raise UsageError("give an INVENTORY, or --lab for the local lab")
    cluster = inventory.load(inventory_path)
    console = Console(highlight=False, soft_wrap=True)
    run = run_options(forks, verbosity, log_dir, ask_become_pass)

    with console.status("fast path: reading every host's fingerprint over SSH"):
        decision = fastpath.decide(
            cluster,
            full=full,
            limit=limit,
            hosts=provision.limited_hosts(cluster, limit),
            also=lambda host: verify.probes_for(cluster, host),
        )
    console.print(decision.message)
    if decision.run_playbook:
        if decision.result is not None:
            for line in fastpath.describe(decision.result):
                console.print(f"  {line}", markup=False)
        converge(console, cluster, inventory_path, run, decision.limit)

    with console.status("verify: checking the cluster"):
        if decision.run_playbook or decision.result is None:
            health = verify.verify(cluster)
        else:  # nothing changed since the fast path read verify's probes too
            health = verify.evaluate(cluster, decision.result.facts)
    report.print_report(health, as_json=False, what="verify")
    if not health.ok:
        raise OperationFailed(
            verify.failure_summary(health),
            details=[f"run `k8s-provision diagnose {inventory_path}` for causes and fixes"],
        )


def converge(
    console: Console,
    cluster: Cluster,
    inventory_path: Path,
    run: runner.RunOptions,
    limit: str | None,
) -> None:
    """Preflight, then site.yml with live progress."""
    hosts = provision.limited_hosts(cluster, limit)
    with console.status("preflight: checking every host over SSH"):
        warnings = provision.check_hosts(cluster, [cluster.host(name) for name in hosts])
    for check in warnings:
        console.print(f"warning: {check.host}: {check.check}: {check.detail}", style="yellow")
    console.print(f"preflight: {len(hosts)} hosts ready")

    with PlaybookProgress(console, hosts, "site.yml") as progress:
        result = provision.apply(inventory_path, replace(run, on_event=progress), limit=limit)
    console.print(
        f"site.yml: ok on {len(result.stats)} hosts, {result.changed()} changes;"
        f" log: {result.log_path}"
    )
