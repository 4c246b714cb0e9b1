"""`k8s-provision render`: write every configuration file each host would receive."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision import render
from k8s_provision.commands.options import inventory_options, load_inventory


@click.command("render")
@click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))
@inventory_options
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("rendered"),
    show_default=True,
    help="Directory to write OUTPUT/<host>/<absolute path> into.",
)
def command(inventory_path: Path, output: Path) -> None:
    """Validate INVENTORY and write the configuration files each host gets, without touching
    any host.

    Files land in OUTPUT/<inventory host>/<path on the host>, for example
    rendered/node1/etc/kubernetes/kubelet. The flannel network JSON that is stored in etcd is
    written for the first etcd member at /etc/k8s-provision/flannel-network.json. Host
    directories already in OUTPUT are replaced whole; nothing is written when the inventory is
    invalid.
    """
    cluster = load_inventory(inventory_path)
    written = render.write_rendered(render.render_cluster(cluster), output)
    hosts = len(cluster.hosts)
    click.echo(f"rendered {len(written)} files for {hosts} hosts into {output}/")
