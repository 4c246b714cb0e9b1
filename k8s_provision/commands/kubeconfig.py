"""`k8s-provision kubeconfig`: the cluster's admin kubeconfig, for kubectl on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from k8s_provision.commands.options import inventory_options, load_inventory
from k8s_provision.pki.admin import admin_kubeconfig, write_admin_kubeconfig


@click.command("kubeconfig")
@click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))
@inventory_options
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default=None,
    help="File to write (mode 0600, replaced atomically); '-' prints it to stdout. Default:"
    " <master>.kubeconfig in the current directory.",
)
def command(inventory_path: Path, output: Path | None) -> None:
    """Write the admin kubeconfig of INVENTORY's cluster (k8s_security tls, or Kubernetes 1.20).

    It holds the admin's private key (group system:masters: every right on the cluster): it is
    written 0600 and never printed unless you ask for it with -o -. Use it with
    `kubectl --kubeconfig FILE get nodes`.
    """
    cluster = load_inventory(inventory_path)
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(admin_kubeconfig(cluster))
        return
    path = output or Path(f"{cluster.master.name}.kubeconfig")
    write_admin_kubeconfig(cluster, path)
    click.echo(f"wrote {path} (mode 0600): kubectl --kubeconfig {path} get nodes")
