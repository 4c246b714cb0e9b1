"""`k8s-provision certs`: the cluster PKI's files on the hosts (logic in `k8s_provision.pki`)."""

from __future__ import annotations

from pathlib import Path

import click

from k8s_provision import report
from k8s_provision.commands.options import (
    inventory_options,
    limit_option,
    load_inventory,
    phase_context,
    playbook_options,
    run_options,
)
from k8s_provision.errors import OperationFailed
from k8s_provision.phases import operations
from k8s_provision.pki.check import certs_check
from k8s_provision.pki.renew import renew_leaves
from k8s_provision.progress import operator_console


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


@group.command("renew")
@click.argument("inventory_path", metavar="INVENTORY", type=click.Path(path_type=Path))
@inventory_options
@limit_option
@playbook_options
def renew(
    inventory_path: Path,
    limit: str | None,
    forks: int | None,
    verbosity: int,
    log_dir: Path,
    lock_timeout: float,
    ask_become_pass: bool,
) -> None:
    """Sign every leaf certificate of INVENTORY's cluster again (new validity, same keys and
    CAs) and roll them out as `up` does: each daemon restarts because its certificate
    changed, etcd one member at a time with a health check between, so the cluster keeps its
    quorum and the API is down only for its own restart; then verify.

    Rotating the CAs themselves (--ca) is not built: a new CA needs every host to trust old
    and new at once during the change.
    """
    cluster = load_inventory(inventory_path)
    renew_leaves(cluster)
    run = run_options(forks, verbosity, log_dir, ask_become_pass)
    with phase_context(
        cluster,
        inventory_path,
        run,
        operator_console(),
        limit=limit,
        lock_timeout=lock_timeout,
        full=True,
    ) as ctx:
        operations.up(ctx)
