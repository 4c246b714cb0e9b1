from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8s_provision import inventory, render
from k8s_provision.errors import UsageError

GOLDEN = Path(__file__).parent / "golden"


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("sample", ["reference.ini", "kubespray.yml"])
def test_samples_render_the_reference_layout_exactly(
    repo: Path, sample: str, tmp_path: Path
) -> None:
    cluster = inventory.load(repo / "inventories" / sample)
    render.write_rendered(render.render_cluster(cluster), tmp_path)
    assert tree(tmp_path) == tree(GOLDEN / "reference")


def test_tls_layout_renders_as_its_golden_copy(tmp_path: Path) -> None:
    cluster = inventory.load(Path(__file__).parent / "data" / "reference-tls.ini")
    assert cluster.settings.k8s_security == "tls"
    render.write_rendered(render.render_cluster(cluster), tmp_path)
    assert tree(tmp_path) == tree(GOLDEN / "reference-tls")


def test_each_role_gets_only_its_files(repo: Path) -> None:
    cluster = inventory.load(repo / "inventories" / "reference.ini")
    master = set(render.render_host(cluster, "master"))
    node = set(render.render_host(cluster, "node2"))
    assert "/etc/kubernetes/apiserver" in master and "/etc/kubernetes/kubelet" not in master
    assert "/etc/kubernetes/kubelet" in node and "/etc/kubernetes/apiserver" not in node
    assert "/etc/k8s-provision/flannel-network.json" in master
    assert "/etc/k8s-provision/flannel-network.json" not in node


def test_debian_family_paths_and_dedicated_etcd(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[masters]\ncp ansible_host=10.9.0.1\n"
        "[nodes]\nw1 ansible_host=10.9.0.2 flannel_iface=eth1\n"
        "[etcd]\ne1 ansible_host=10.9.0.11\n[all:vars]\nk8s_os_family=debian\n"
        "flannel_backend=vxlan\nkube_cluster_dns=10.254.0.10\nkube_allow_priv=yes\n"
        "k8s_security=classic\n"
    )
    cluster = inventory.load(path)
    files = render.render_cluster(cluster)
    assert set(files["e1"]) == {"/etc/default/etcd", "/etc/k8s-provision/flannel-network.json"}
    assert "/etc/default/flanneld" in files["w1"] and "/etc/default/etcd" not in files["w1"]
    etcd = files["e1"]["/etc/default/etcd"]
    assert 'ETCD_DATA_DIR="/var/lib/etcd/default"\n' in etcd
    assert 'ETCD_INITIAL_CLUSTER="e1=http://10.9.0.11:2380"\n' in etcd
    assert 'ETCD_ENABLE_V2="true"\n' in etcd
    network = json.loads(files["e1"]["/etc/k8s-provision/flannel-network.json"])
    assert network == {"Network": "172.17.0.0/16", "Backend": {"Type": "vxlan"}}
    kubelet = files["w1"]["/etc/kubernetes/kubelet"]
    assert 'KUBELET_ARGS="--cluster-dns=10.254.0.10 --cluster-domain=cluster.local"\n' in kubelet
    assert 'FLANNEL_OPTIONS="-iface=eth1"\n' in files["w1"]["/etc/default/flanneld"]
    assert (
        'FLANNEL_ETCD_ENDPOINTS="http://10.9.0.11:2379"\n' in files["w1"]["/etc/default/flanneld"]
    )
    assert 'KUBE_ALLOW_PRIV="--allow-privileged=true"\n' in files["cp"]["/etc/kubernetes/config"]


def test_write_is_atomic_and_replaces_host_dirs(repo: Path, tmp_path: Path) -> None:
    cluster = inventory.load(repo / "inventories" / "reference.ini")
    out = tmp_path / "out"
    # A file an earlier render wrote (another family's path) goes with the directory.
    (out / "master" / "etc" / "default").mkdir(parents=True)
    (out / "master" / "etc" / "default" / "etcd").write_text("old")
    render.write_rendered(render.render_cluster(cluster), out)
    assert not (out / "master" / "etc" / "default").exists()
    assert (out / "node1" / "etc" / "kubernetes" / "kubelet").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging directory left


def test_write_failure_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError):
        render.write_rendered({"h": {"/etc/x": "y"}}, blocker)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_host_directory_render_did_not_write_is_never_deleted(repo: Path, tmp_path: Path) -> None:
    cluster = inventory.load(repo / "inventories" / "reference.ini")
    out = tmp_path / "out"
    (out / "master").mkdir(parents=True)
    (out / "master" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="did not write"):
        render.write_rendered(render.render_cluster(cluster), out)
    assert (out / "master" / "notes.txt").read_text() == "mine"
    assert not (out / "node1").exists()


@pytest.mark.parametrize("host", ["..", ".", "/etc", "a/../../b", ""])
def test_a_host_name_that_is_not_one_path_part_is_refused(host: str, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    with pytest.raises(UsageError):
        render.write_rendered({host: {"/etc/kubernetes/config": "x"}}, out)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_destination_that_climbs_out_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        render.write_rendered({"h": {"/etc/../../../x": "y"}}, tmp_path / "out")
    assert not (tmp_path / "x").exists()
