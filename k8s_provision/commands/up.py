"""`k8s-provision up`: validate, then the phases of `operations.up`: lock, preflight, site.yml,
verify."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision import lab
from k8s_provision.commands.options import (
    inventory_options,
    limit_option,
    load_inventory,
    phase_context,
    playbook_options,
    run_options,
)
from k8s_provision.errors import UsageError
from k8s_provision.phases import operations
from k8s_provision.progress import operator_console


@click.command("up")
@click.argument(
    "inventory_path", metavar="[INVENTORY]", required=False, type=click.Path(path_type=Path)
)
@inventory_options
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
    lock_timeout: float,
    ask_become_pass: bool,
) -> None:
    """Provision the cluster described by INVENTORY and prove it healthy.

    \b
    0. take the cluster lock (see --lock-timeout);
    1. validate the inventory (exit 2 and every problem listed when it is wrong);
       the fast path reads a fingerprint of every host in one SSH round: when the cluster
       already matches, steps 2 and 3 are skipped (--full runs them anyway); otherwise they
       run on the hosts that differ, or on all when a difference is cluster-wide;
    2. preflight every host over SSH, in parallel: reachable, root or working sudo, the OS
       family the inventory says, a Python the installed ansible-core can manage, clocks
       within 5 s, distinct machine ids; nothing is changed when this fails;
    3. run k8s_provision.cluster.site with live progress; the full Ansible output goes to a log file
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
    cluster = load_inventory(inventory_path)
    console = operator_console()
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    with phase_context(
        cluster, inventory_path, run, console, limit=limit, lock_timeout=lock_timeout, full=full
    ) as ctx:
        operations.up(ctx)
