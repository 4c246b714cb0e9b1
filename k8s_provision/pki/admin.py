"""The operator's own credentials: the admin kubeconfig (O=system:masters) from the cluster's
PKI, written 0600 atomically, or handed back for `-o -`."""

from __future__ import annotations

from pathlib import Path

from k8s_provision import facts
from k8s_provision.errors import UsageError
from k8s_provision.files import atomic_write
from k8s_provision.model import Cluster
from k8s_provision.pki.store import ensure_pki


def admin_kubeconfig(cluster: Cluster) -> bytes:
    """The admin kubeconfig's bytes: a client certificate of the cluster CA, the CA, and the
    master's secure port. Makes what is missing of the PKI first, as `up` would."""
    if not cluster.settings.tls and not facts.api_secure(cluster):
        raise UsageError(
            "k8s_security is classic: the API server takes no client certificates, so there is"
            " no admin kubeconfig; use kubectl -s " + facts.api_url(cluster),
        )
    state = ensure_pki(cluster, facts.pki_state_dir(cluster))
    return (state / "hosts" / cluster.master.name / "admin.kubeconfig").read_bytes()


def write_admin_kubeconfig(cluster: Cluster, path: Path) -> None:
    """Write it to `path` with mode 0600 from the first byte, replacing a file atomically."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name")
    try:
        atomic_write(path, admin_kubeconfig(cluster), mode=0o600)
    except FileNotFoundError:
        raise UsageError(f"{path.parent}: no such directory") from None
