from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_provision import inventory
from k8s_provision.errors import InventoryError
from k8s_provision.inventory import connection, source, typos
from k8s_provision.model import ROLE_ETCD, ROLE_MASTER, ROLE_NODE

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "invalid_inventories.yml").read_text())


def write_case(case: dict[str, Any], where: Path) -> Path:
    path: Path = where / case["file"]
    if "binary" in case:
        path.write_bytes(base64.b64decode(case["binary"]))
    else:
        path.write_text(case["text"])
    for rel, text in case.get("extra_files", {}).items():
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        (where / rel).write_text(text)
    return path


def error_text(err: InventoryError) -> str:
    return "\n".join([err.message, *err.details])


def test_there_are_at_least_twenty_malformed_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_malformed_inventory_is_rejected_with_the_culprit(
    case: dict[str, Any], tmp_path: Path
) -> None:
    path = write_case(case, tmp_path)
    with pytest.raises(InventoryError) as caught:
        inventory.load(path, strict=case.get("strict", False))
    text = error_text(caught.value)
    assert caught.value.exit_code == 2
    for expected in case["expect"]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    # Every line names the file, so the operator knows which one to edit.
    for line in [caught.value.message, *caught.value.details]:
        assert str(path) in line


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[masters]\nm ansible_host=10.0.0.1 ip=bad\n[nodes]\nn1 ansible_host=10.0.0.2\n"
        "[all:vars]\nkube_api_port=0\nflannel_etcd_prefix=relative\n"
    )
    with pytest.raises(InventoryError) as caught:
        inventory.load(path)
    text = error_text(caught.value)
    for fragment in ("host m: ip", "kube_api_port", "flannel_etcd_prefix", "2 members"):
        assert fragment in text
    assert "4 problems" in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such file"):
        inventory.load(tmp_path / "nope.ini")


def test_reference_layout(repo: Path) -> None:
    cluster = inventory.load(repo / "inventories" / "reference.ini")
    assert cluster.masters == ("master",)
    assert cluster.nodes == ("node1", "node2")
    assert cluster.etcd == ("master", "node1", "node2")
    assert [h.ip for h in cluster.hosts] == ["192.168.10.1", "192.168.10.2", "192.168.10.3"]
    assert cluster.host("master").roles == frozenset({ROLE_MASTER, ROLE_ETCD})
    assert cluster.host("node2").roles == frozenset({ROLE_NODE, ROLE_ETCD})
    assert cluster.settings.flannel_network == "172.17.0.0/16"
    assert cluster.settings.etcd_allow_even_members is False
    assert cluster.host("node1").connection.user == "root"


def test_etcd_defaults_to_masters_and_nodes(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[masters]\nm ansible_host=10.0.0.1\n[nodes]\na ansible_host=10.0.0.2\n"
        "b ansible_host=10.0.0.3\n"
    )
    assert inventory.load(path).etcd == ("m", "a", "b")


def test_host_and_group_sharing_a_name_keep_their_variables(tmp_path: Path) -> None:
    # ansible-core files the host's INI vars under the group of the same name.
    path = tmp_path / "inv.ini"
    path.write_text(
        "[master]\nmaster ansible_host=10.1.0.1 ansible_port=2222\n[nodes]\n"
        "node1 ansible_host=10.1.0.2\nnode2 ansible_host=10.1.0.3\n"
    )
    cluster = inventory.load(path)
    assert cluster.master.ip == "10.1.0.1"
    assert cluster.master.connection.port == 2222


def test_yaml_with_group_vars_and_dedicated_etcd(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "flannel_network: 10.200.0.0/16\nkube_service_addresses: 10.96.0.0/12\n"
        "flannel_backend: vxlan\n"
    )
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "w1.yml").write_text("flannel_iface: eth1\n")
    path = tmp_path / "hosts.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "cp": {"ansible_host": "192.168.50.10"},
                        "w1": {"ansible_host": "192.168.50.21"},
                        "e1": {"ansible_host": "192.168.50.31"},
                        "e2": {"ansible_host": "192.168.50.32"},
                        "e3": {"ansible_host": "192.168.50.33", "ip": "192.168.60.33"},
                    },
                    "children": {
                        "masters": {"hosts": {"cp": None}},
                        "nodes": {"hosts": {"w1": None}},
                        "etcd": {"hosts": {"e1": None, "e2": None, "e3": None}},
                    },
                }
            }
        )
    )
    cluster = inventory.load(path)
    assert cluster.etcd == ("e1", "e2", "e3")
    assert cluster.settings.flannel_network == "10.200.0.0/16"
    assert cluster.settings.flannel_backend == "vxlan"
    assert cluster.host("w1").flannel_iface == "eth1"
    assert cluster.host("e3").ip == "192.168.60.33"
    assert cluster.host("e3").address == "192.168.50.33"
    assert not cluster.host("e1").runs_flannel


def test_jinja_in_inventory_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn1 ansible_host=10.0.0.2\n"
        "n2 ansible_host=10.0.0.3\n[all:vars]\nip={{ ansible_host }}\n"
        "etcd_cluster_token=tok-{{ 'abc' }}\n"
    )
    cluster = inventory.load(path)
    assert cluster.host("n2").ip == "10.0.0.3"
    assert cluster.settings.etcd_cluster_token == "tok-abc"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("flanel_network", "flannel_network"),
        ("ansible_hots", "ansible_host"),
        ("ip", None),
        ("kube_api_prot", "kube_api_port"),
        ("my_own_variable", None),
        ("etcd_data_dirs", "etcd_data_dir"),
    ],
)
def test_close_match(name: str, expected: str | None) -> None:
    assert inventory.close_match(name, inventory.known_variables()) == expected


def test_edit_distance_counts_a_swap_as_one() -> None:
    assert inventory.edit_distance("nodse", "nodes") == 1
    assert inventory.edit_distance("abc", "abc") == 0
    assert inventory.edit_distance("", "abc") == 3


def test_bastion_group_routes_hosts_without_a_proxy_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[bastion]\nbastion ansible_host=203.0.113.5 ansible_user=jump\n"
        "[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn1 ansible_host=10.0.0.2\n"
        "n2 ansible_host=10.0.0.3 ansible_ssh_common_args='-o ProxyJump=other@198.51.100.7'\n"
    )
    cluster = inventory.load(path)
    assert [h.name for h in cluster.hosts] == ["m", "n1", "n2"]
    assert cluster.bastion is not None and cluster.bastion.address == "203.0.113.5"
    assert cluster.host("m").connection.via == cluster.bastion
    assert cluster.host("n2").connection.via is None
    assert cluster.bastion.connection.user == "jump"


def test_two_bastions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[bastion]\nb1 ansible_host=203.0.113.5\nb2 ansible_host=203.0.113.6\n"
        "[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn1 ansible_host=10.0.0.2\n"
        "n2 ansible_host=10.0.0.3\n"
    )
    with pytest.raises(InventoryError, match="bastion"):
        inventory.load(path)


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "inv.ini"
    os.mkfifo(fifo)
    with pytest.raises(InventoryError, match="a FIFO"):
        inventory.load(fifo)


def test_a_fifo_in_group_vars_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text("[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn ansible_host=10.0.0.2\n")
    (tmp_path / "group_vars").mkdir()
    os.mkfifo(tmp_path / "group_vars" / "all.yml")
    with pytest.raises(InventoryError, match=r"all\.yml: a FIFO"):
        inventory.load(path)


def test_a_device_is_refused_at_once() -> None:
    with pytest.raises(InventoryError, match="a device"):
        inventory.load("/dev/zero")


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    with path.open("wb") as handle:
        handle.truncate(source.MAX_FILE_BYTES + 1)
    with pytest.raises(InventoryError, match="bytes"):
        inventory.load(path)


def test_group_typo_hints_name_the_preferred_spelling(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text("[kube-mastr]\nm ansible_host=10.0.0.1\n[nodes]\nn ansible_host=10.0.0.2\n")
    with pytest.raises(InventoryError) as caught:
        inventory.load(path)
    assert "looks like a typo of 'masters'" in error_text(caught.value)


def test_kubespray_variables_are_never_typos() -> None:
    names: list[str] = []
    for path in sorted((DATA / "kubespray").rglob("*.yml")):
        names += yaml.safe_load(path.read_text())
    assert len(names) > 300
    assert [n for n in names if typos.suggestion(n)] == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("flannel-network", "flannel_network"),
        ("Kube_Api_Port", "kube_api_port"),
        ("kube_api_prot", "kube_api_port"),
        ("etcd_data_dirs", "etcd_data_dir"),
        ("ansible_ssh_usr", "ansible_ssh_user"),
        ("kube_apiserver_port", None),
        ("kube_pods_subnet", None),
        ("etcd_member_names", None),
        ("kube_network_node_prefix", None),
        ("flannel_interface", None),
        ("etcd_peer_ports", None),
    ],
)
def test_typo_suggestions(name: str, expected: str | None) -> None:
    assert typos.suggestion(name) == expected


def test_connection_variables_come_from_ansible_core() -> None:
    names = connection.option_variables()
    assert names["address"][:2] == ("ansible_host", "ansible_ssh_host")
    assert "ansible_ssh_user" in names["user"]
    assert "ansible_ssh_pass" in names["password"]


def test_the_password_stays_out_of_repr(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[masters]\nm ansible_host=10.0.0.1 ansible_ssh_pass=hunter2\n[nodes]\n"
        "n1 ansible_host=10.0.0.2\nn2 ansible_host=10.0.0.3\n"
    )
    host = inventory.load(path).host("m")
    assert host.connection.password == "hunter2"
    assert "hunter2" not in repr(host)


def test_a_duplicate_address_shared_by_hundreds_stays_one_short_line(tmp_path: Path) -> None:
    nodes = "".join(f"n{i} ansible_host=10.0.1.1\n" for i in range(300))
    path = tmp_path / "inv.ini"
    path.write_text(f"[masters]\nm ansible_host=10.0.0.1\n[nodes]\n{nodes}[etcd]\nm\n")
    with pytest.raises(InventoryError) as caught:
        inventory.load(path)
    duplicate = [line for line in caught.value.details if "duplicate address" in line]
    assert len(duplicate) == 1
    assert "and 295 more" in duplicate[0]
    assert all(len(line) < 300 for line in caught.value.details)


def test_even_default_etcd_suggests_an_etcd_group(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text("[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn ansible_host=10.0.0.2\n")
    with pytest.raises(InventoryError, match=r"add an \[etcd\] group"):
        inventory.load(path)


def test_an_undefined_jinja_variable_names_file_host_and_variable(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text(
        "[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn1 ansible_host=10.0.0.2\n"
        "n2 ansible_host=10.0.0.3\n[all:vars]\nkube_node_name={{ nowhere }}\n"
    )
    with pytest.raises(InventoryError) as caught:
        inventory.load(path)
    assert f"{path}: host m: kube_node_name:" in caught.value.message
    assert "nowhere" in caught.value.message


def test_a_yaml_structure_error_gives_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  children:\n    masters:\n      hosts: [m]\n")
    with pytest.raises(InventoryError, match=r"inv\.yml:3\)"):
        inventory.load(path)


def test_security_defaults_to_tls_and_the_reference_sample_is_classic(tmp_path: Path) -> None:
    bare = tmp_path / "inventory.ini"
    bare.write_text(
        "[masters]\nm ansible_host=10.0.0.1\n[nodes]\nn ansible_host=10.0.0.2\n[etcd]\nm\n"
    )
    assert inventory.load(bare).settings.k8s_security == "tls"
    reference = Path(__file__).parents[2] / "inventories" / "reference.ini"
    assert inventory.load(reference).settings.k8s_security == "classic"
