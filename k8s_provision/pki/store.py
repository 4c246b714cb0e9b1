"""The cluster's PKI state directory on the controller: made once, kept, never silently
regenerated.

Layout (the directory and every directory below it 0700, every file 0600):

    ca.crt ca.key etcd-ca.crt etcd-ca.key sa.key sa.pub    long-lived, made once
    hosts/<host>/<file>                                     what that host receives

A leaf whose subject, names or usages no longer match the cluster (a host's address changed)
is signed again with its existing key; nothing else is ever replaced. A CA that cannot sign
any more (its key missing while its certificate or leaves exist) or a leaf not signed by the
CA beside it (a state directory mixed from two clusters) stops the run with the way out: a
new CA would quietly split the cluster in two, every host trusting only part of the others.
Private keys are never printed or logged; errors name files, never contents.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from k8s_provision import facts
from k8s_provision.errors import OperationFailed
from k8s_provision.files import atomic_write
from k8s_provision.model import Cluster
from k8s_provision.pki import crypto
from k8s_provision.pki.kubeconfig import kubeconfig_text
from k8s_provision.pki.plan import CA_NAME, ETCD_CA_NAME, leaves


class PkiError(OperationFailed):
    """The PKI state directory cannot be used as it is (exit 1); the message says what to do."""


class _Ca:
    """A CA of the state directory; its key is read only when something must be signed."""

    def __init__(self, state_dir: Path, stem: str, name: str) -> None:
        self.crt_path, self.key_path = state_dir / f"{stem}.crt", state_dir / f"{stem}.key"
        self.state_dir = state_dir
        self._key: rsa.RSAPrivateKey | None = None
        have_crt, have_key = self.crt_path.exists(), self.key_path.exists()
        if have_crt and have_key:
            self.cert = crypto.load_cert(self.crt_path.read_bytes())
        elif have_crt or have_key:
            missing = self.key_path if have_crt else self.crt_path
            raise PkiError(
                f"{missing}: missing, so the CA {self.crt_path.name} cannot sign any more",
                details=[
                    f"restore {missing.name} into {state_dir} from your backup of that"
                    " directory; or, to start a new PKI (every host gets new certificates and"
                    f" the old ones stop being trusted), move {state_dir} away and run `up`",
                ],
            )
        else:
            hosts = state_dir / "hosts"
            if hosts.is_dir() and any(hosts.rglob("*.crt")):
                raise PkiError(
                    f"{self.crt_path}: missing while certificates it signed exist under {hosts}",
                    details=[
                        f"restore {self.crt_path.name} and {self.key_path.name} into"
                        f" {state_dir} from your backup; or move {state_dir} away and run `up`"
                        " to start a new PKI (the hosts' old certificates are then replaced)",
                    ],
                )
            self._key = crypto.new_key()
            _write(self.key_path, crypto.private_pem(self._key))
            self.cert = crypto.make_ca(name, self._key)
            _write(self.crt_path, crypto.cert_pem(self.cert))

    @property
    def key(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            self._key = crypto.load_key(self.key_path.read_bytes(), str(self.key_path))
            if crypto.public_pem(self._key) != crypto.cert_public_pem(self.cert):
                raise PkiError(
                    f"{self.key_path}: not the key of {self.crt_path.name}",
                    details=[f"restore both from the same backup of {self.state_dir}"],
                )
        return self._key


def ensure_pki(cluster: Cluster, state_dir: Path, *, renew: bool = False) -> Path:
    """Make whatever is missing of the cluster's PKI under `state_dir`; returns `state_dir`.
    Two runs at once (forks of one ansible-playbook) take turns on a lock file. `renew` signs
    every leaf again (same keys, a new validity period; `certs renew`); the CAs stay."""
    _private_dir(state_dir)
    with _locked(state_dir / ".lock"):
        cas = {"cluster": _Ca(state_dir, "ca", CA_NAME)}
        if cluster.settings.tls:
            cas["etcd"] = _Ca(state_dir, "etcd-ca", ETCD_CA_NAME)
        sa_pub = _ensure_sa(state_dir)
        server = facts.api_secure_url(cluster)
        for host in cluster.hosts:
            wanted = leaves(cluster, host)
            if not wanted:
                continue
            out = state_dir / "hosts" / host.name
            _private_dir(out.parent)
            _private_dir(out)
            if host.is_master or host.is_node:
                _write(out / "ca.crt", crypto.cert_pem(cas["cluster"].cert))
            if "etcd" in cas and (host.is_etcd or host.runs_flannel):
                _write(out / "etcd-ca.crt", crypto.cert_pem(cas["etcd"].cert))
            if host.is_master:
                _write(out / "sa.key", (state_dir / "sa.key").read_bytes())
                _write(out / "sa.pub", sa_pub)
            for leaf in wanted:
                _ensure_leaf(out, leaf, cas[leaf.ca], cas["cluster"].cert, server, renew=renew)
    return state_dir


def _ensure_sa(state_dir: Path) -> bytes:
    """The service-account key pair: the API server checks tokens with sa.pub, the
    controller-manager signs them with sa.key."""
    path = state_dir / "sa.key"
    if path.exists():
        pub = state_dir / "sa.pub"
        if pub.exists():
            return pub.read_bytes()
        key = crypto.load_key(path.read_bytes(), str(path))
    else:
        key = crypto.new_key()
        _write(path, crypto.private_pem(key))
    _write(state_dir / "sa.pub", crypto.public_pem(key))
    return crypto.public_pem(key)


def _ensure_leaf(
    out: Path,
    leaf: crypto.Leaf,
    ca: _Ca,
    cluster_ca: x509.Certificate,
    server: str,
    *,
    renew: bool = False,
) -> None:
    cert_path, key_path = out / f"{leaf.stem}.crt", out / f"{leaf.stem}.key"
    current = crypto.load_cert(cert_path.read_bytes()) if cert_path.exists() else None
    if current is not None and not crypto.signed_by(current, ca.cert):
        raise PkiError(
            f"{cert_path}: not signed by {ca.crt_path} (a certificate of another CA)",
            details=[
                f"this state directory mixes two PKIs; restore {ca.crt_path.parent} whole from"
                " one backup, or move it away and run `up` to start a new PKI",
            ],
        )
    if key_path.exists():
        key_pem = key_path.read_bytes()
    else:
        key_pem = crypto.private_pem(crypto.new_key())
        _write(key_path, key_pem)
        current = None  # a certificate without its key is of no use: sign the new key
    if current is None or renew or not crypto.matches(current, leaf):
        key = crypto.load_key(key_pem, str(key_path))
        current = crypto.issue(leaf, key, ca.cert, ca.key)
        _write(cert_path, crypto.cert_pem(current), replace=True)
    if leaf.kubeconfig:
        text = kubeconfig_text(
            server,
            crypto.cert_pem(cluster_ca),
            crypto.cert_pem(current),
            key_pem,
            leaf.common_name,
        )
        _write(out / f"{leaf.stem}.kubeconfig", text.encode(), replace=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _write(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write 0600 from the first byte (never briefly world-readable); leave equal files alone."""
    if path.exists() and (not replace or path.read_bytes() == data):
        return
    atomic_write(path, data, mode=0o600)
