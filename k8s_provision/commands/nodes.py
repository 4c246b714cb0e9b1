"""`k8s-provision add-node` and `remove-node`: grow and shrink a running cluster."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision.commands.options import (
    confirm_or_refuse,
    inventory_argument,
    inventory_options,
    load_inventory,
    phase_context,
    playbook_options,
    run_options,
)
from k8s_provision.phases import operations
from k8s_provision.progress import operator_console


@click.command("add-node", short_help="Join new inventory hosts to the running cluster.")
@inventory_argument
@inventory_options
@click.argument("hosts", metavar="HOST...", nargs=-1, required=True)
@playbook_options
def add_node(
    inventory_path: Path,
    hosts: tuple[str, ...],
    forks: int | None,
    verbosity: int,
    log_dir: Path,
    lock_timeout: float,
    ask_become_pass: bool,
) -> None:
    """Join HOST... (already added to INVENTORY, in nodes and/or etcd) to the running cluster.

    The new hosts are preflighted, then site.yml converges the cluster: the new hosts get
    everything, the others change only where the new hosts change their configuration (no
    service restarts for a plain node). A host new to the etcd group goes through etcd's
    member-add flow and joins as `existing`, one member at a time, keeping quorum; refused,
    with the reason, unless every current member is healthy and quorum holds after each add.
    A member a failed add-node added but never started is completed. Ends with a verify
    report.
    """
    cluster = load_inventory(inventory_path)
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    console = operator_console()
    with phase_context(
        cluster, inventory_path, run, console, hosts=list(hosts), lock_timeout=lock_timeout
    ) as ctx:
        result = operations.add_node(ctx).result
    assert result is not None  # the converge phase always runs
    changed = {host: stats["changed"] for host, stats in result.stats.items() if stats["changed"]}
    listing = ", ".join(f"{h} ({n})" for h, n in changed.items()) or "none"
    console.print(f"add-node: {', '.join(hosts)} joined; changes per host: {listing}")
    console.print(f"log: {result.log_path}")


@click.command(
    "remove-node", short_help="Take hosts out of the cluster (Kubernetes, etcd) and wipe them."
)
@inventory_argument
@inventory_options
@click.argument("hosts", metavar="HOST...", nargs=-1, required=True)
@playbook_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Remove an etcd member that does not answer (a dead host that must go); the other"
    " members must still be healthy and keep quorum.",
)
def remove_node(
    inventory_path: Path,
    hosts: tuple[str, ...],
    forks: int | None,
    verbosity: int,
    log_dir: Path,
    lock_timeout: float,
    ask_become_pass: bool,
    yes: bool,
    force: bool,
) -> None:
    """Take HOST... out of the cluster: `kubectl delete node` where the API answers, `etcdctl
    member remove` for etcd members (through a remaining member), then reset.yml on those
    hosts only (services stopped, configuration and data removed). The master cannot be
    removed. Asks first; without a terminal it refuses unless --yes is given.

    Refused, with the reason, when an etcd member other than HOST... is unhealthy, when etcd
    would lose its quorum, or when a leaving member does not answer (then --force). Members
    are matched by peer URL and ID, so one added by a failed add-node and never started goes
    too.

    Afterwards delete the hosts from INVENTORY and run `k8s-provision up INVENTORY`, so the
    other hosts' configuration no longer names them.
    """
    cluster = load_inventory(inventory_path)
    confirm_or_refuse(f"Remove {', '.join(hosts)} from the cluster and wipe them?", yes)
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    console = operator_console()
    with phase_context(
        cluster,
        inventory_path,
        run,
        console,
        hosts=list(hosts),
        force=force,
        lock_timeout=lock_timeout,
    ) as ctx:
        steps = operations.remove_node(ctx).removals
    for step in steps:
        console.print(f"{step.host}: {step.step}: {step.detail}")
    console.print(
        f"remove-node: done. Now delete {', '.join(hosts)} from {inventory_path} and run"
        f" `k8s-provision up {inventory_path}`."
    )
