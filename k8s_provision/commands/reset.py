"""`k8s-provision reset`: tear the cluster down."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision.commands.options import (
    confirm_or_refuse,
    inventory_argument,
    inventory_options,
    limit_option,
    load_inventory,
    phase_context,
    playbook_options,
    run_options,
)
from k8s_provision.phases import operations
from k8s_provision.progress import operator_console


@click.command("reset")
@inventory_argument
@inventory_options
@limit_option
@playbook_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def command(
    inventory_path: Path,
    limit: str | None,
    forks: int | None,
    verbosity: int,
    log_dir: Path,
    lock_timeout: float,
    ask_become_pass: bool,
    yes: bool,
) -> None:
    """Stop and disable every cluster service, and remove the configuration files, the etcd
    data and the flannel/docker network state on every host of INVENTORY (runs reset.yml).
    The cluster's data is gone afterwards. Asks first; without a terminal it refuses unless
    --yes is given."""
    cluster = load_inventory(inventory_path)
    names = [h.name for h in cluster.hosts]
    confirm_or_refuse(
        f"Reset {len(names)} hosts ({', '.join(names)}) and delete the etcd data?", yes
    )
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    console = operator_console()
    with phase_context(
        cluster, inventory_path, run, console, limit=limit, lock_timeout=lock_timeout
    ) as ctx:
        result = operations.reset(ctx).result
    assert result is not None  # the reset phase always runs
    console.print(f"reset: done on {len(result.stats)} hosts; log: {result.log_path}")
