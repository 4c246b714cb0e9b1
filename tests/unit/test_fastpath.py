"""The fast path without hosts: the expected state comes from site.yml's tasks and `render`,
a converged host's probe outputs match it, and each kind of drift is a difference (cluster-wide
for the etcd membership and the flannel key)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from k8s_provision import facts, inventory, service_state
from k8s_provision.fastpath import FastPathResult, decide, describe
from k8s_provision.fastpath.compare import Difference, differences, probes_for
from k8s_provision.fastpath.expected import Expected, expected
from k8s_provision.model import Cluster, Host
from k8s_provision.probes import HostFacts, Output, batch
from k8s_provision.probes import fingerprint as fp
from k8s_provision.probes.files import FileState
from k8s_provision.render import render_host
from tests.unit.file_output import files_output

REPO = Path(__file__).resolve().parent.parent.parent
# The record of the configuration each service started with, as the roles write it.
APPLIED = "a" * 64


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return inventory.load(REPO / "inventories" / "reference.ini")


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    # The lab's layout: debian hosts, where only etcd has a package.
    text = (REPO / "inventories" / "reference.ini").read_text()
    path = tmp_path_factory.mktemp("inv") / "debian.ini"
    path.write_text(text.replace("k8s_os_family=redhat", "k8s_os_family=debian"))
    return inventory.load(path)


def converged(cluster: Cluster, host: Host, spec: Expected, container: bool = False) -> HostFacts:
    """What the fingerprint probes print on a host site.yml has just converged (built from the
    expected state: the reader of real output is tested by running the probes below)."""
    files = [FileState(f.path, "file", f.sha256, f.mode, f.owner, f.group) for f in spec.files]
    files += [FileState(d.path, "dir", "", d.mode, d.owner, d.group) for d in spec.directories]
    units = "\n".join(
        f"Id={u.name}.service\nLoadState=loaded\n"
        f"ActiveState={'active' if u.active else 'inactive'}\n"
        f"UnitFileState={'enabled' if u.enabled else 'disabled'}\n"
        for u in spec.units
    )
    kernel = (
        f"@container={'systemd-nspawn' if container else 'none'}\n"
        + "".join(f"{fp.sysctl_path(k)}:{v}\n" for k, v in spec.sysctl.items())
        + "".join(f"@module={m}\n" for m in spec.modules)
    )
    begin, end = spec.hosts_markers
    outputs = {
        "fp-files": Output(0, files_output(files)),
        "fp-units": Output(0, units),
        "config-state": Output(
            0,
            "".join(
                f"config-state {unit} {APPLIED} {APPLIED} active\n"
                for unit in service_state.host_unit_paths(cluster, host)
            ),
        ),
        "fp-kernel": Output(0, kernel),
        "fp-hostname": Output(0, host.name + "\n"),
        "fp-hosts": Output(0, "\n".join([begin, *(spec.hosts_lines or ()), end]) + "\n"),
        "fp-packages": Output(0, "".join(f"{p} install ok installed\n" for p in spec.packages)),
        "fp-selinux": Output(0, "Permissive\n0\n"),
        "fp-repos": Output(
            0,
            "".join(
                f"[{r.section}]\n" + "".join(f"{k} = {v}\n" for k, v in r.values.items())
                for r in spec.repos
            ),
        ),
        "fp-firewall": Output(
            0,
            f"running\n{' '.join(spec.firewall.ports)}\n@\n{spec.firewall.trusted}\n"
            if spec.firewall
            else "",
        ),
    }
    if spec.flannel_key is not None:
        members = [
            {"name": n, "peerURLs": [facts.etcd_peer_url(cluster, cluster.host(n))]}
            for n in cluster.etcd
        ]
        outputs["etcd-members"] = Output(0, json.dumps({"members": members, "header": {}}))
        outputs["fp-flannel-key"] = Output(0, spec.flannel_key[1] + "\n")
    return HostFacts(host.name, outputs)


def diff(
    cluster: Cluster, name: str, change: Callable[[dict[str, Output]], None] | None = None
) -> list[Difference]:
    host = cluster.host(name)
    got = converged(cluster, host, expected(cluster, host))
    outputs = dict(got.outputs)
    if change:
        change(outputs)
    return differences(
        cluster,
        host,
        lambda container: expected(cluster, host, in_container=container),
        replace(got, outputs=outputs),
    )


def edit(probe: str, old: str, new: str) -> Callable[[dict[str, Output]], None]:
    def change(outputs: dict[str, Output]) -> None:
        text = outputs[probe].stdout
        assert old in text, (old, text)
        outputs[probe] = Output(0, text.replace(old, new, 1))

    return change


def edited_digest(path: str) -> Callable[[dict[str, Output]], None]:
    """The file at `path` reads with another SHA-256 (what sha256sum prints after an edit)."""

    def change(outputs: dict[str, Output]) -> None:
        text, line = outputs["fp-files"].stdout, f"  {path}\n"
        at = text.index(line) - 64
        outputs["fp-files"] = Output(0, text[:at] + "0" * 64 + text[at + 64 :])

    return change


def test_expected_comes_from_the_roles_and_render(cluster: Cluster) -> None:
    master, node1 = cluster.host("master"), cluster.host("node1")
    spec = expected(cluster, node1)
    rendered = render_host(cluster, "node1")
    by_path = {f.path: f for f in spec.files}
    for path, content in rendered.items():
        assert by_path[path].sha256 == hashlib.sha256(content.encode()).hexdigest()
        assert (by_path[path].mode, by_path[path].owner) == ("644", "root")
    assert set(spec.packages) == {"etcd", "flannel", "docker", "kubernetes-node"}
    assert [u.name for u in spec.units] == ["etcd", "flanneld", "docker", "kubelet", "kube-proxy"]
    assert all(u.active and u.enabled for u in spec.units)
    assert spec.sysctl == {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
    assert spec.restarts["kubelet"] == ("/etc/kubernetes/config", "/etc/kubernetes/kubelet")
    assert spec.firewall is not None
    assert spec.firewall.ports == tuple(facts.open_ports(cluster, node1))
    assert spec.flannel_key is None
    master_spec = expected(cluster, master)  # the first etcd member stores the flannel key
    assert master_spec.flannel_key == (
        "/atomic.io/network/config",
        '{"Network":"172.17.0.0/16","Backend":{"Type":"udp"}}',
    )
    assert "kubernetes-master" in master_spec.packages


def test_debian_and_containers_expect_what_the_roles_do_there(debian: Cluster) -> None:
    spec = expected(debian, debian.host("node1"), in_container=True)
    assert spec.packages == ("etcd-server", "etcd-client")
    assert [u.name for u in spec.units] == ["etcd"]
    assert spec.sysctl == {} and spec.modules == ()
    assert spec.firewall is None and spec.repos == () and not spec.selinux_permissive
    assert "/etc/default/etcd" in {f.path for f in spec.files}


@pytest.mark.parametrize("name", ["master", "node1", "node2"])
def test_a_converged_host_matches(cluster: Cluster, name: str) -> None:
    assert diff(cluster, name) == []


DRIFT = {
    "file edited": ("node1", edited_digest("/etc/kubernetes/proxy"), "file"),
    "file removed": ("node1", edit("fp-files", "\t/etc/kubernetes/proxy", "\t/x"), "file"),
    "file mode": ("node1", edit("fp-files", "\t644\troot", "\t666\troot"), "file"),
    "package removed": (
        "node1",
        edit("fp-packages", "docker install", "docker deinstall"),
        "package",
    ),
    "unit stopped": ("node1", edit("fp-units", "ActiveState=active", "ActiveState=failed"), "unit"),
    "unit disabled": (
        "node1",
        edit("fp-units", "UnitFileState=enabled", "UnitFileState=disabled"),
        "unit",
    ),
    "config newer than service": (
        "node1",
        edit("config-state", f"kubelet {APPLIED} {APPLIED}", f"kubelet {APPLIED} {'b' * 64}"),
        "config-freshness",
    ),
    "sysctl changed": ("node1", edit("fp-kernel", "ip_forward:1", "ip_forward:0"), "sysctl"),
    "module unloaded": ("node1", edit("fp-kernel", "@module=br_netfilter", ""), "kernel-module"),
    "firewall rule removed": ("node1", edit("fp-firewall", "10250/tcp", ""), "firewall"),
    "trusted source removed": ("node1", edit("fp-firewall", "172.17.0.0/16", ""), "firewall"),
    "hosts block": ("node1", edit("fp-hosts", "192.168.10.3 node2", ""), "hosts-block"),
    "hostname": ("node1", edit("fp-hostname", "node1", "localhost"), "hostname"),
    "selinux enforcing": ("node1", edit("fp-selinux", "Permissive", "Enforcing"), "selinux"),
    "repo edited": ("node1", edit("fp-repos", "vault.centos.org", "mirror.example"), "yum-repo"),
    "flannel key changed": ("master", edit("fp-flannel-key", "udp", "vxlan"), "flannel-key"),
    "etcd member missing": (
        "master",
        edit("etcd-members", '"name": "node2"', '"name": ""'),
        "etcd-membership",
    ),
}


@pytest.mark.parametrize("case", sorted(DRIFT))
def test_each_drift_is_a_difference(cluster: Cluster, case: str) -> None:
    host, change, kind = DRIFT[case]
    found = diff(cluster, host, change)
    assert {d.kind for d in found} == {kind}, found
    assert all(d.host == host for d in found)
    assert all(d.cluster_wide == (kind in ("flannel-key", "etcd-membership")) for d in found)


def test_an_inventory_change_differs_on_every_host_that_renders_it(cluster: Cluster) -> None:
    changed = replace(cluster, settings=replace(cluster.settings, kube_log_level=3))
    for name in ("master", "node1"):
        host = cluster.host(name)
        got = converged(cluster, host, expected(cluster, host))  # the hosts as converged before
        found = differences(changed, host, lambda c, h=host: expected(changed, h), got)
        assert {d.item for d in found} == {"/etc/kubernetes/config"}


def test_in_a_container_kernel_settings_are_left_alone(cluster: Cluster) -> None:
    host = cluster.host("node1")
    got = converged(cluster, host, expected(cluster, host, in_container=True), container=True)
    found = differences(cluster, host, lambda c: expected(cluster, host, in_container=c), got)
    assert found == []


def test_an_unreachable_host_is_a_difference(cluster: Cluster) -> None:
    host = cluster.host("node2")
    found = differences(
        cluster,
        host,
        lambda c: expected(cluster, host),
        HostFacts("node2", error="timed out connecting to 192.168.10.3:22"),
    )
    assert [(d.kind, d.found) for d in found] == [
        ("ssh", "timed out connecting to 192.168.10.3:22")
    ]


def test_the_limit_is_the_differing_hosts_unless_cluster_wide() -> None:
    file = Difference("node1", "file", "/etc/kubernetes/proxy", "a", "b")
    key = Difference("master", "flannel-key", "/atomic.io/network/config", "a", "b")
    assert FastPathResult(("master", "node1"), (), 0.1).matches
    assert FastPathResult(("master", "node1"), (), 0.1).limit is None
    assert FastPathResult(("master", "node1"), (file,), 0.1).limit == "node1"
    both = FastPathResult(("master", "node1"), (file, key), 0.1)
    assert both.cluster_wide and both.limit is None
    assert both.differing_hosts == ("master", "node1")


def test_the_probes_read_a_real_filesystem(cluster: Cluster, tmp_path: Path) -> None:
    # The probes' own shell, run here on files the test writes.
    present = tmp_path / "config"
    present.write_text("KUBE_LOGTOSTDERR=true\n")
    empty = tmp_path / "empty"
    empty.touch()
    paths = [str(present), str(tmp_path), str(tmp_path / "absent"), str(empty)]
    files_probe = fp.files(paths)
    kernel_probe = fp.kernel(["kernel.ostype", "no.such.key"], ["no_such_module_here"])
    packages_probe = fp.packages("printf '%s install ok installed\\n'", ["etcd"])
    script = batch.batch_script([files_probe, kernel_probe, packages_probe])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    probes = [files_probe, kernel_probe, packages_probe]
    got = HostFacts("here", batch.parse_batch(out.stdout, probes))
    files = got.read(files_probe)
    assert files is not None
    assert files[str(present)].sha256 == hashlib.sha256(present.read_bytes()).hexdigest()
    assert files[str(tmp_path)].kind == "dir"
    assert files[str(tmp_path / "absent")].kind == "missing"
    assert files[str(empty)].sha256 == hashlib.sha256(b"").hexdigest()
    assert files[str(present)].mode == f"{present.stat().st_mode & 0o7777:o}"
    kernel = got.read(kernel_probe)
    assert kernel is not None and kernel.sysctl == {"kernel.ostype": "Linux"}
    assert kernel.modules == frozenset()
    assert got.read(packages_probe) == frozenset({"etcd"})


def test_every_host_reads_its_fingerprint_in_one_batch(cluster: Cluster) -> None:
    for host in cluster.hosts:
        probes = probes_for(cluster, host, expected(cluster, host))
        names = [p.name for p in probes]
        assert len(names) == len(set(names))
        assert ("fp-flannel-key" in names) == (host.name == cluster.etcd[0])


def test_full_skips_the_check_and_keeps_the_limit(cluster: Cluster) -> None:
    decision = decide(cluster, full=True, limit="node1")
    assert decision.run_playbook and decision.limit == "node1" and decision.result is None


def test_differences_are_described_for_the_operator() -> None:
    found = tuple(
        Difference(f"node{i}", "file", "/etc/kubernetes/proxy", "present", "missing")
        for i in range(7)
    )
    lines = describe(FastPathResult(("node0",), found, 0.2), shown=5)
    assert lines[0] == "node0: file /etc/kubernetes/proxy: expected present, found missing"
    assert lines[-1] == "... and 2 more"
