"""`k8s-provision plan`: what `up` would change, per host, without changing anything."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console

from k8s_provision import fastpath, inventory, lifecycle, provision
from k8s_provision.commands.options import (
    inventory_argument,
    limit_option,
    playbook_options,
    run_options,
)


@click.command("plan")
@inventory_argument
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
    ask_become_pass: bool,
    as_json: bool,
) -> None:
    """Show what `up INVENTORY` would change: files (with unified diffs), packages and
    services, per host. Runs site.yml in Ansible's check mode with diffs; nothing on the hosts
    changes. A converged cluster gives an empty plan: the fast path confirms it in one SSH
    round per host without running site.yml (--full runs it anyway)."""
    cluster = inventory.load(inventory_path)
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    decision = fastpath.decide(
        cluster, full=full, limit=limit, hosts=provision.limited_hosts(cluster, limit)
    )
    changes = (
        lifecycle.plan(inventory_path, run, limit=decision.limit) if decision.run_playbook else []
    )
    if as_json:
        click.echo(json.dumps({"changes": [asdict(c) for c in changes]}, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    if not changes:
        console.print("plan: no changes; the cluster matches the inventory")
        return
    for change in changes:
        console.print(f"[bold]{change.host}[/bold] {change.kind} {change.path}")
        if change.kind == "file":
            for line in change.diff.splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                console.print(f"    {line}", style=style, markup=False)
        else:
            console.print(f"    {change.diff}", markup=False)
    hosts = len({c.host for c in changes})
    console.print(f"plan: {len(changes)} changes on {hosts} hosts; run `k8s-provision up` to apply")
