"""`k8s-provision plan`: what `up` would change, per host, without changing anything."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.text import Text

from k8s_provision.commands.options import (
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
from k8s_provision.report import counted


@click.command("plan")
@inventory_argument
@inventory_options
@limit_option
@click.option(
    "--full", is_flag=True, help="Run the check-mode site.yml even when the fast path matches."
)
@playbook_options
@click.option("--json", "as_json", is_flag=True, help='Print {"changes": [...]} only.')
def command(
    inventory_path: Path,
    limit: str | None,
    full: bool,
    forks: int | None,
    verbosity: int,
    log_dir: Path,
    lock_timeout: float,
    ask_become_pass: bool,
    as_json: bool,
) -> None:
    """Show what `up INVENTORY` would change: files (with unified diffs), packages and
    services, per host. Runs site.yml in Ansible's check mode with diffs; nothing on the hosts
    changes. A converged cluster gives an empty plan."""
    cluster = load_inventory(inventory_path)
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    console = operator_console(stderr=as_json)
    with phase_context(
        cluster, inventory_path, run, console, limit=limit, lock_timeout=lock_timeout, full=full
    ) as ctx:
        changes = operations.plan(ctx).changes
    if as_json:
        click.echo(json.dumps({"changes": [asdict(c) for c in changes]}, indent=2))
        return
    if not changes:
        console.print("plan: no changes; the cluster matches the inventory")
        return
    for change in changes:
        console.print(Text.assemble((change.host, "bold"), f" {change.kind} {change.path}"))
        if change.kind == "file":
            for line in change.diff.splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                console.print(f"    {line}", style=style)
        else:
            console.print(f"    {change.diff}")
    hosts = len({c.host for c in changes})
    console.print(
        f"plan: {counted(len(changes), 'change')} on {counted(hosts, 'host')};"
        " run `k8s-provision up` to apply"
    )
