"""`k8s-provision verify`: prove the cluster healthy over SSH (logic in `k8s_provision.verify`)."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision import report, verify
from k8s_provision.commands.options import inventory_options, load_inventory
from k8s_provision.errors import OperationFailed


@click.command("verify")
@click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))
@inventory_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print only {"ok": ..., "checks": [{"host", "check", "status", "detail"}]}.',
)
def command(inventory_path: Path, as_json: bool) -> None:
    """Check every host of INVENTORY over SSH, all hosts at once: the systemd units of its
    roles, every etcd member's health and the membership, the flannel network key and each
    host's subnet lease, docker0 inside the lease, the apiserver's /healthz, kubectl get
    componentstatuses and nodes (every inventory node Ready), and security findings.

    \b
    Statuses: pass; fail; warn (a security finding, does not fail verify);
    skip (the component is not installed on that host, or the data it needs is unavailable).
    An unreachable host gets a single failed `ssh` check and no others.
    Exit 0 when no check failed, 1 otherwise.
    """
    cluster = load_inventory(inventory_path)
    result = verify.verify(cluster)
    report.print_report(result, as_json=as_json, what="verify")
    if not result.ok:
        raise OperationFailed(verify.failure_summary(result))
