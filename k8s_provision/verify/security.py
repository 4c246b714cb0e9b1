"""Security findings (warn, never fail): the insecure API port and etcd's plaintext client
port reachable from other hosts; with k8s_security tls, etcd answering a client without a
certificate."""

from __future__ import annotations

from k8s_provision import facts
from k8s_provision.model import Host
from k8s_provision.probes import network
from k8s_provision.probes.http import curl_error
from k8s_provision.probes.network import is_loopback, listeners
from k8s_provision.report import Check
from k8s_provision.verify.context import Context, not_installed


def insecure_port_check(ctx: Context, master: Host) -> Check:
    name = "security:insecure-port"
    port = ctx.cluster.settings.kube_api_port
    if facts.api_secure(ctx.cluster):
        return Check(
            master.name,
            name,
            "pass",
            f"Kubernetes {ctx.cluster.settings.kube_version} has no insecure port: port {port}"
            " is TLS and needs a client certificate",
        )
    sockets = ctx.read(master.name, network.listening())
    if sockets is None:
        # No ss: judge by what the inventory tells kube-apiserver to bind.
        address = ctx.cluster.settings.kube_api_address
        if is_loopback(address):
            return Check(master.name, name, "pass", f"kube_api_address is {address}")
        return Check(
            master.name,
            name,
            "warn",
            f"kube_api_address is {address}: anyone who reaches {master.ip}:{port} can use"
            " the API without credentials (firewall the port to the cluster hosts)",
        )
    bound = listeners(sockets, port)
    if not bound:
        return Check(master.name, name, "skip", f"nothing listens on port {port}")
    exposed = [a for a in bound if not is_loopback(a)]
    if not exposed:
        return Check(master.name, name, "pass", f"port {port} listens on loopback only")
    shown = ", ".join(f"{a}:{port}" for a in exposed)
    return Check(
        master.name,
        name,
        "warn",
        f"the insecure API port listens on {shown}: anyone who reaches {master.ip}:{port} can"
        " use the API without credentials (firewall the port to the cluster hosts)",
    )


def etcd_plaintext_check(ctx: Context, host: Host) -> Check:
    name = "security:etcd-plaintext"
    if not ctx.installed(host, "etcd"):
        return not_installed(host, name, "etcd")
    if ctx.cluster.settings.tls:
        return _etcd_client_auth(ctx, host, name)
    port = ctx.cluster.settings.etcd_client_port
    sockets = ctx.read(host.name, network.listening())
    if sockets is None:
        return Check(host.name, name, "skip", "cannot list listening ports (ss failed)")
    bound = listeners(sockets, port)
    if not bound:
        return Check(host.name, name, "skip", f"nothing listens on port {port}")
    exposed = [a for a in bound if not is_loopback(a)]
    if not exposed:
        return Check(host.name, name, "pass", f"port {port} listens on loopback only")
    return Check(
        host.name,
        name,
        "warn",
        f"etcd's client port listens on {', '.join(f'{a}:{port}' for a in exposed)} without"
        " TLS: anyone who reaches it can read and change every key, including all cluster"
        " state",
    )


def _etcd_client_auth(ctx: Context, host: Host, name: str) -> Check:
    """k8s_security tls: etcd must refuse a client that shows no certificate (asked for real,
    with the CA but without a client certificate)."""
    url = facts.etcd_client_url(ctx.cluster, host)
    output = ctx.output(host.name, "etcd-anonymous")
    if output is None or output.exit_code == 127:
        return Check(host.name, name, "skip", "cannot ask etcd without a certificate (no curl)")
    if output.exit_code == 0:
        return Check(
            host.name,
            name,
            "warn",
            f"etcd at {url} answered a client without a certificate: client-certificate auth"
            " is off, so anyone who reaches it can read and change every key",
        )
    return Check(
        host.name,
        name,
        "pass",
        f"etcd at {url} serves TLS only and refuses clients without a certificate of the etcd"
        f" CA ({curl_error(output)})",
    )
