"""`k8s-provision certs`: the cluster PKI's files on the hosts (logic in `k8s_provision.pki`)."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision import report
from k8s_provision.commands.options import inventory_options, load_inventory
from k8s_provision.errors import OperationFailed
from k8s_provision.pki.check import certs_check


@click.group("certs")
def group() -> None:
    """The cluster's certificates (k8s_security tls)."""


@group.command("check")
@click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))
@inventory_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(inventory_path: Path, as_json: bool) -> None:
    """Check every certificate, key and kubeconfig of the cluster PKI on every host: present,
    owner and mode, signed by the cluster's CA, expiry, names covering the host's addresses,
    keys identical to the controller's copy.

    Expiring within 30 days is a warning; expired, foreign or mismatched fails (exit 1).
    Only certificates (public) are read off the hosts; keys are compared by digest.
    """
    cluster = load_inventory(inventory_path)
    result = certs_check(cluster)
    report.print_report(result, as_json=as_json, what="certs check")
    if not result.ok:
        failed = ", ".join(f"{c.host} {c.check}" for c in result.failed[:6])
        raise OperationFailed(f"certs check: {len(result.failed)} failed: {failed}")
