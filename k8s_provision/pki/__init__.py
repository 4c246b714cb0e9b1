"""The cluster PKI, made on the controller with the `cryptography` library: a cluster CA and
a separate etcd CA, the certificates of every etcd member and client, of the API server and of
each Kubernetes identity, and the service-account key pair (see `plan` for who gets what,
`store` for the state directory and its rules, `crypto` for the certificates themselves).

The entry point is `ensure_pki(cluster, state_dir)`; `state_dir(cluster)` is where a cluster
keeps it when the inventory names no kube_pki_source."""

from __future__ import annotations

from k8s_provision.pki.crypto import Leaf
from k8s_provision.pki.kubeconfig import kubeconfig_text
from k8s_provision.pki.plan import (
    CA_NAME,
    ETCD_CA_NAME,
    ETCD_PKI_DIR,
    HOST_PKI_DIR,
    HostFile,
    host_files,
    leaves,
)
from k8s_provision.pki.store import PkiError, ensure_pki

__all__ = [
    "CA_NAME",
    "ETCD_CA_NAME",
    "ETCD_PKI_DIR",
    "HOST_PKI_DIR",
    "HostFile",
    "Leaf",
    "PkiError",
    "ensure_pki",
    "host_files",
    "kubeconfig_text",
    "leaves",
]
