"""The TLS layout as rendered: every etcd and flannel setting it writes exists in the etcd and
flannel releases we target (flag lists in tests/unit/data/, each saying where it comes from),
and what it asks of etcd, flannel and the API server."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from k8s_provision import inventory, render
from k8s_provision.model import Cluster

DATA = Path(__file__).parent / "data"
REFERENCE = DATA.parent.parent.parent / "inventories" / "reference.ini"
# etcd per family: CentOS 7 ships 3.3, the Debian lab 3.4.
ETCD_RELEASE = {"redhat": "3.3", "debian": "3.4"}
INVENTORIES = {
    "redhat-tls": DATA / "reference-tls.ini",
    "debian-tls": DATA / "lab-1.20-tls.ini",
    "redhat-classic": REFERENCE,
    "debian-classic": DATA / "lab-1.20.ini",
}


def flags(name: str) -> set[str]:
    return set(yaml.safe_load((DATA / name).read_text())["flags"])


def env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = shlex.split(value)[0] if value.strip('"') else ""
    return values


def unknown_etcd_settings(cluster: Cluster) -> list[str]:
    """ETCD_* variables of the rendered etcd file whose flag the family's etcd lacks."""
    known = flags(f"etcd_flags/{ETCD_RELEASE[cluster.settings.k8s_os_family]}.yml")
    path = render.FAMILY_PATHS[cluster.settings.k8s_os_family]["etcd_config_path"]
    problems = []
    for host, files in render.render_cluster(cluster).items():
        for variable in env(files.get(path, "")):
            flag = variable.removeprefix("ETCD_").lower().replace("_", "-")
            if flag not in known:
                problems.append(f"{host}: {variable} (--{flag})")
    return problems


def unknown_flannel_flags(cluster: Cluster) -> list[str]:
    known = flags("flannel_flags.yml")
    path = render.FAMILY_PATHS[cluster.settings.k8s_os_family]["flanneld_config_path"]
    problems = []
    for host, files in render.render_cluster(cluster).items():
        for token in env(files.get(path, "")).get("FLANNEL_OPTIONS", "").split():
            name = token.lstrip("-").split("=", 1)[0]
            if name not in known:
                problems.append(f"{host}: {token.split('=')[0]}")
    return problems


@pytest.mark.parametrize("case", sorted(INVENTORIES))
def test_every_etcd_and_flannel_setting_exists_in_the_targeted_release(case: str) -> None:
    cluster = inventory.load(INVENTORIES[case])
    assert unknown_etcd_settings(cluster) == []
    assert unknown_flannel_flags(cluster) == []


def test_a_setting_the_release_lacks_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        INVENTORIES["redhat-tls"].read_text() + "flannel_extra_options=-etcd-password=x\n"
    )
    assert unknown_flannel_flags(inventory.load(path)) == [
        f"{h}: -etcd-password" for h in ("master", "node1", "node2")
    ]
    # A 3.4-only flag rendered for the 3.3 of CentOS is caught the same way.
    assert "log-outputs" not in flags("etcd_flags/3.3.yml")
    assert "log-outputs" in flags("etcd_flags/3.4.yml")


def test_etcd_requires_client_certificates_on_both_ports() -> None:
    cluster = inventory.load(INVENTORIES["redhat-tls"])
    etcd = env(render.render_host(cluster, "node1")["/etc/etcd/etcd.conf"])
    urls = [etcd[k] for k in etcd if k.endswith("_URLS") or k == "ETCD_INITIAL_CLUSTER"]
    assert urls and all("http://" not in u and "https://" in u for u in urls)
    assert etcd["ETCD_CLIENT_CERT_AUTH"] == etcd["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert etcd["ETCD_TRUSTED_CA_FILE"] == etcd["ETCD_PEER_TRUSTED_CA_FILE"]
    assert etcd["ETCD_TRUSTED_CA_FILE"] == "/etc/etcd/pki/etcd-ca.crt"


def test_flannel_reads_etcd_over_tls() -> None:
    cluster = inventory.load(INVENTORIES["redhat-tls"])
    flannel = env(render.render_host(cluster, "node2")["/etc/sysconfig/flanneld"])
    assert flannel["FLANNEL_ETCD_ENDPOINTS"].startswith("https://")
    options = flannel["FLANNEL_OPTIONS"].split()
    assert options == [
        "-etcd-cafile=/etc/kubernetes/pki/etcd-ca.crt",
        "-etcd-certfile=/etc/kubernetes/pki/flannel-etcd-client.crt",
        "-etcd-keyfile=/etc/kubernetes/pki/flannel-etcd-client.key",
    ]


def test_api_server_secure_port_and_no_anonymous_access() -> None:
    cluster = inventory.load(INVENTORIES["redhat-tls"])
    files = render.render_host(cluster, "master")
    api = env(files["/etc/kubernetes/apiserver"])
    args = dict(a.removeprefix("--").split("=", 1) for a in api["KUBE_API_ARGS"].split())
    assert api["KUBE_API_ADDRESS"] == "--insecure-bind-address=127.0.0.1"
    assert args["secure-port"] == "6443" and args["anonymous-auth"] == "false"
    assert args["authorization-mode"] == "ABAC"
    assert args["etcd-certfile"] == "/etc/kubernetes/pki/apiserver-etcd-client.crt"
    assert "ServiceAccount" in api["KUBE_ADMISSION_CONTROL"]
    assert api["KUBE_ADMISSION_CONTROL"].endswith(",ServiceAccount,ResourceQuota")
    policy = files[render.ABAC_POLICY_PATH].splitlines()
    assert len(policy) == 7 and all(re.match(r'^\{"apiVersion":"abac', line) for line in policy)
    cm = env(files["/etc/kubernetes/controller-manager"])["KUBE_CONTROLLER_MANAGER_ARGS"]
    assert "--service-account-private-key-file=/etc/kubernetes/pki/sa.key" in cm
    assert "--root-ca-file=/etc/kubernetes/pki/ca.crt" in cm
    node = render.render_host(cluster, "node1")
    assert "--kubeconfig=/etc/kubernetes/pki/kubelet.kubeconfig" in node["/etc/kubernetes/kubelet"]
    assert 'KUBE_MASTER="--master=https://192.168.10.1:6443"' in node["/etc/kubernetes/config"]
