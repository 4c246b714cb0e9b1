"""`k8s-provision lab ...`: the local systemd-nspawn test lab (logic in `k8s_provision.lab`)."""

from __future__ import annotations

import json

import click

from k8s_provision import lab


@click.group(name="lab")
def group() -> None:
    """A local lab of Debian hosts (master, node1, node2, ...) booted with systemd-nspawn in
    their own network namespaces, reachable over SSH through the lab inventory. Needs root.

    \b
    Environment: K8S_PROVISION_LAB_NAME (default k8sp), K8S_PROVISION_LAB_DIR (state dir),
    K8S_PROVISION_CACHE_DIR (base rootfs cache), K8S_PROVISION_LAB_MIRROR (Debian mirror).
    """


@group.command()
@click.option(
    "--nodes",
    type=click.IntRange(1, lab.MAX_NODES),
    default=2,
    show_default=True,
    help="Number of nodes besides the master. On a running lab, adds the missing ones.",
)
@click.option(
    "--install-deps",
    is_flag=True,
    help="apt-get install debootstrap, systemd-container and friends when missing.",
)
@click.option(
    "--kubernetes/--no-kubernetes",
    default=True,
    show_default=True,
    help="Give a new lab's hosts the Kubernetes server binaries (built once from Debian's "
    "source package and cached; the first build takes about 20 min).",
)
@click.option(
    "--security",
    type=click.Choice(["tls", "classic"]),
    default="tls",
    show_default=True,
    help="k8s_security of a new lab's inventory: tls (a cluster PKI, etcd over TLS with client "
    "certificates) or classic (the guide's plaintext layout).",
)
def up(nodes: int, install_deps: bool, kubernetes: bool, security: str) -> None:
    """Start the lab (a no-op when it is already up) and print its inventory path last."""
    state = lab.up(nodes=nodes, install_deps=install_deps, kubernetes=kubernetes, security=security)
    _print_table(lab.status(config=state.config))
    click.echo(state.inventory)


@group.command()
def build() -> None:
    """Build the Kubernetes server binaries into the cache (what the first `lab up` does), and
    print their directory. A cached build is reused."""
    click.echo(lab.build_kubernetes())


@group.command()
def down() -> None:
    """Stop the lab and remove everything it created."""
    lab.down()


@group.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Each host's address and state (running, off, dead)."""
    result = lab.status()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif not result.hosts:
        click.echo(f"lab {result.name} is not up")
    else:
        _print_table(result)


@group.command()
def inventory() -> None:
    """Print the lab inventory's path (for `-i` of ansible and k8s-provision)."""
    click.echo(lab.inventory_path())


@group.command(context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, host: str, command: tuple[str, ...]) -> None:
    """Open a shell on HOST, or run `-- COMMAND...` there."""
    ctx.exit(lab.ssh_interactive(host, command))


def _print_table(result: lab.LabStatus) -> None:
    rows = [("HOST", "ADDRESS", "STATE")]
    rows += [(h.name, h.address, h.state) for h in result.hosts]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, address, state in rows:
        click.echo(f"{name:<{widths[0]}}  {address:<{widths[1]}}  {state}")
