"""`certs renew`: every leaf certificate signed again in the cluster's state directory; `up`
then rolls them out (a changed certificate restarts its daemon, etcd one member at a time)."""

from __future__ import annotations

from k8s_provision import facts
from k8s_provision.errors import UsageError
from k8s_provision.model import Cluster
from k8s_provision.pki.store import ensure_pki


def renew_leaves(cluster: Cluster) -> None:
    if not cluster.settings.tls:
        raise UsageError("k8s_security is classic: the cluster has no PKI of the tool's to renew")
    ensure_pki(cluster, facts.pki_state_dir(cluster), renew=True)
