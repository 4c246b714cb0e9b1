"""The lab's pure logic: names, addresses, recipe key, apt mirror, inventory, state file, relay.
Nothing here needs root or boots a host."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from k8s_provision import lab
from k8s_provision.commands.lab import group
from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.lab import images, kubehost, kubernetes, rootfs, system


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """pytest's tmp_path is longer than a lab directory may be (SSH control socket paths)."""
    path = Path(tempfile.mkdtemp(prefix="k8sp"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def cfg(short_dir: Path) -> lab.LabConfig:
    return lab.make_config("unit", state_dir=short_dir / "state", cache_dir=short_dir / "cache")


@pytest.fixture(autouse=True)
def _no_lab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "K8S_PROVISION_LAB_NAME",
        "K8S_PROVISION_LAB_DIR",
        "K8S_PROVISION_CACHE_DIR",
        "K8S_PROVISION_LAB_MIRROR",
    ):
        monkeypatch.delenv(var, raising=False)


# --- configuration -----------------------------------------------------------------------


def test_default_config() -> None:
    cfg = lab.make_config()
    assert cfg.name == "k8sp"
    assert cfg.state_dir == Path("/var/lib/k8s-provision/labs/k8sp")
    assert cfg.cache_dir == Path("/var/cache/k8s-provision")
    assert cfg.net_ns == "k8sp-net"
    assert cfg.host_ns("node1") == "k8sp-node1"


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_PROVISION_LAB_NAME", "other")
    monkeypatch.setenv("K8S_PROVISION_LAB_DIR", "/srv/lab")
    monkeypatch.setenv("K8S_PROVISION_CACHE_DIR", "/srv/cache")
    cfg = lab.make_config()
    assert (cfg.name, cfg.state_dir) == ("other", Path("/srv/lab"))
    assert cfg.cache_dir == Path("/srv/cache")
    # An explicit name gets its own directory: the environment's belongs to the other lab.
    assert lab.make_config("mine").state_dir == Path("/var/lib/k8s-provision/labs/mine")
    # The longest lab name still fits the default directory (control socket path budget).
    assert lab.make_config("a" * 16).name == "a" * 16


@pytest.mark.parametrize("name", ["", "K8sp", "k8s-p", "1lab", "a" * 17, "lab/x"])
def test_bad_lab_names_are_rejected(name: str) -> None:
    with pytest.raises(UsageError, match="invalid lab name"):
        lab.make_config(name)


@pytest.mark.parametrize("state_dir", ["/tmp/" + "x" * 41, "/tmp/a b", "/tmp/a,b", "/tmp/a:b"])
def test_unusable_state_dirs_are_rejected(state_dir: str) -> None:
    with pytest.raises(UsageError, match="K8S_PROVISION_LAB_DIR"):
        lab.make_config("x", state_dir=Path(state_dir))


# --- hosts and addresses -----------------------------------------------------------------


def test_lab_hosts_addresses() -> None:
    assert lab.lab_hosts(2) == (
        ("master", "192.168.10.1"),
        ("node1", "192.168.10.2"),
        ("node2", "192.168.10.3"),
    )
    hosts = lab.lab_hosts(lab.MAX_NODES)
    assert hosts[-1] == (f"node{lab.MAX_NODES}", "192.168.10.253")
    assert str(lab.BRIDGE_ADDRESS) not in {address for _, address in hosts}


@pytest.mark.parametrize("nodes", [0, -1, lab.MAX_NODES + 1])
def test_node_count_bounds(nodes: int) -> None:
    with pytest.raises(UsageError, match="--nodes"):
        lab.lab_hosts(nodes)


@pytest.mark.parametrize(
    ("hosts", "members"),
    [
        (["master"], ("master",)),
        (["master", "node1"], ("master",)),
        (["master", "node1", "node2"], ("master", "node1", "node2")),
        (["master", "node1", "node2", "node3", "node4"], ("master", "node1", "node2")),
    ],
)
def test_etcd_members_are_odd(hosts: list[str], members: tuple[str, ...]) -> None:
    assert lab.etcd_members(hosts) == members


# --- base rootfs recipe ------------------------------------------------------------------


def test_recipe_key_is_stable_and_tracks_the_recipe() -> None:
    key = lab.recipe_key("amd64")
    assert key == lab.recipe_key("amd64", packages=tuple(reversed(lab.PACKAGES)))
    assert len(key) == 16
    assert key != lab.recipe_key("arm64")
    assert key != lab.recipe_key("amd64", packages=(*lab.PACKAGES, "vim"))
    assert key != lab.recipe_key("amd64", version=lab.RECIPE_VERSION + 1)
    assert key != lab.recipe_key("amd64", suite="trixie")


def test_recipe_has_what_ansible_and_the_cluster_need() -> None:
    for package in ("python3", "python3-apt", "openssh-server", "etcd-server", "systemd-sysv"):
        assert package in lab.PACKAGES


DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_apt_source_from_deb822(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(DEB822)
    source = lab.apt_source(sources_dir=tmp_path, sources_list=tmp_path / "none")
    assert source.uri == "http://mirror.example/debian"
    assert source.keyring == Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def test_apt_source_skips_disabled_and_source_stanzas(tmp_path: Path) -> None:
    text = (
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://on.example/debian\nSuites: bookworm\n"
    )
    (tmp_path / "a.sources").write_text(text)
    assert lab.apt_source(sources_dir=tmp_path, sources_list=tmp_path / "x").uri == (
        "http://on.example/debian"
    )


def test_apt_source_from_one_line_sources_list(tmp_path: Path) -> None:
    sources_list = tmp_path / "sources.list"
    sources_list.write_text(
        "# comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://sec.example/debsec bookworm-security main\n"
        "deb http://line.example/debian bookworm main\n"
    )
    source = lab.apt_source(sources_dir=tmp_path / "none", sources_list=sources_list)
    assert source.uri == "http://line.example/debian"


def test_apt_source_of_another_release_serves_bookworm_too(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "deb http://sec.example/debian-security trixie-security main\n"
        "deb http://main.example/debian trixie main\n"
    )
    source = lab.apt_source(sources_dir=tmp_path, sources_list=tmp_path / "sources.list")
    assert source.uri == "http://main.example/debian"


def test_apt_source_missing_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="no Debian mirror") as err:
        lab.apt_source(sources_dir=tmp_path, sources_list=tmp_path / "none")
    assert "K8S_PROVISION_LAB_MIRROR" in err.value.details[0]
    monkeypatch.setenv("K8S_PROVISION_LAB_MIRROR", "http://override.example/debian")
    assert lab.apt_source(sources_dir=tmp_path).uri == "http://override.example/debian"


# --- access files ------------------------------------------------------------------------


def test_inventory_parses_with_ansible(cfg: lab.LabConfig, tmp_path: Path) -> None:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    path = tmp_path / "inventory.ini"
    path.write_text(lab.inventory_text(cfg, lab.lab_hosts(3)))
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(path)])
    variables = VariableManager(loader=loader, inventory=inventory)

    def names(group: str) -> list[str]:
        return [h.name for h in inventory.groups[group].get_hosts()]

    assert names("masters") == ["master"]
    assert names("nodes") == ["node1", "node2", "node3"]
    assert names("etcd") == ["master", "node1", "node2"]
    hostvars = variables.get_vars(host=inventory.get_host("node3"))
    assert hostvars["ansible_host"] == hostvars["ip"] == "192.168.10.4"
    assert hostvars["ansible_user"] == "root"
    assert hostvars["ansible_python_interpreter"] == "/usr/bin/python3"
    assert hostvars["k8s_os_family"] == "debian"
    assert hostvars["ansible_ssh_private_key_file"] == str(cfg.key)
    # Labs share addresses; their ControlPersist sockets must not be shared.
    assert hostvars["ansible_control_path_dir"] == str(cfg.control_dir)
    # ansible's ssh plugin splits the common args with shlex, as ssh would.
    args = shlex.split(hostvars["ansible_ssh_common_args"])
    assert args == [
        "-o",
        f"UserKnownHostsFile={cfg.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ProxyCommand=nsenter --net=/run/netns/unit-net bash -c '{lab.RELAY_SCRIPT}' %h %p",
    ]
    # What ssh and paramiko run once %h %p are filled in.
    assert shlex.split(args[-1].removeprefix("ProxyCommand="))[2:] == [
        "bash",
        "-c",
        lab.RELAY_SCRIPT,
        "%h",
        "%p",
    ]


def test_ssh_config(cfg: lab.LabConfig) -> None:
    text = lab.ssh_config_text(cfg, lab.lab_hosts(1))
    assert "Host node1\n    HostName 192.168.10.2\n" in text
    assert f"    UserKnownHostsFile {cfg.known_hosts}\n" in text
    assert "    StrictHostKeyChecking yes\n" in text
    assert f"    ControlPath {cfg.control_dir}/%r@%h:%p\n" in text


def test_hosts_file_and_known_hosts() -> None:
    text = lab.hosts_file_text(lab.lab_hosts(1))
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert "192.168.10.2\tnode1\n" in text
    keys = ["ssh-ed25519 AAAAC3Nz root@build\n", "garbage\n"]
    assert lab.known_hosts_lines("node1", "192.168.10.2", keys) == [
        "node1,192.168.10.2 ssh-ed25519 AAAAC3Nz"
    ]


# --- state file --------------------------------------------------------------------------


def test_state_round_trip(cfg: lab.LabConfig) -> None:
    state = lab.LabState(
        config=cfg,
        base=Path("/var/cache/k8s-provision/rootfs/abc"),
        hosts=(
            lab.HostState("master", "192.168.10.1", 100, 5000, ("/sys/fs/cgroup/systemd/x",)),
            lab.HostState("node1", "192.168.10.2"),
        ),
    )
    assert lab.state_from_json(cfg, lab.state_to_json(state)) == state
    assert state.node_count == 1
    assert state.host("node1").pid is None
    with pytest.raises(UsageError, match="no host 'node7'"):
        state.host("node7")


def test_state_of_another_lab_is_refused(cfg: lab.LabConfig) -> None:
    other = lab.make_config("other", state_dir=cfg.state_dir)
    text = lab.state_to_json(lab.LabState(config=other, base=Path("/b"), hosts=()))
    with pytest.raises(OperationFailed, match="does not belong"):
        lab.state_from_json(cfg, text)


def test_process_identity() -> None:
    own = system.process_start_time(os.getpid())
    assert own is not None
    assert system.alive(lab.HostState("x", "1.2.3.4", os.getpid(), own))
    # Same PID, other start time: a reused PID is not ours (what a reboot leaves behind).
    assert not system.alive(lab.HostState("x", "1.2.3.4", os.getpid(), own + 1))
    assert system.process_start_time(2**22 + 1) is None


# --- environment checks ------------------------------------------------------------------


def test_missing_tools_name_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    missing = ("debootstrap", "systemd-nspawn")
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool in missing else "/x")
    problems = lab.missing_requirements()
    assert any("needs root" in p for p in problems)
    assert any(
        "missing systemd-nspawn, debootstrap" in p
        and "apt-get install -y debootstrap systemd-container" in p
        and "--install-deps" in p
        for p in problems
    )
    with pytest.raises(UsageError) as err:
        lab.require_environment()
    assert err.value.exit_code == 2


# --- CLI (no lab running) ----------------------------------------------------------------


def test_cli_status_and_inventory_without_a_lab(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_PROVISION_LAB_NAME", "unitcli")
    monkeypatch.setenv("K8S_PROVISION_LAB_DIR", str(short_dir / "lab"))
    result = CliRunner().invoke(group, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "unitcli"
    assert data["up"] is False
    assert data["hosts"] == []
    assert "not up" in CliRunner().invoke(group, ["status"]).output
    result = CliRunner().invoke(group, ["inventory"])
    assert isinstance(result.exception, UsageError)
    assert "lab up" in result.exception.message


# --- relay -------------------------------------------------------------------------------


def _relay(host: str, port: int) -> list[str]:
    return shlex.split(lab.relay_command().replace("%h", host).replace("%p", str(port)))


def test_relay_copies_both_ways_and_ends_when_the_host_closes() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    sent = b"hello " * 10000

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SSH-2.0-banner\n")
            received = b""
            while len(received) < len(sent) and (chunk := conn.recv(65536)):
                received += chunk
            conn.sendall(received.upper())

    thread = threading.Thread(target=serve)
    thread.start()
    relay = subprocess.Popen(
        _relay("127.0.0.1", port), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert relay.stdin is not None and relay.stdout is not None
    relay.stdin.write(sent)
    relay.stdin.flush()  # stdin stays open, as an ssh client's does: the host's close ends it
    out = relay.stdout.read()
    assert relay.wait(timeout=30) == 0
    relay.stdin.close()
    thread.join()
    server.close()
    assert out == b"SSH-2.0-banner\n" + sent.upper()


def test_relay_reports_refused_connections() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = subprocess.run(
        _relay("127.0.0.1", port), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert f"/dev/tcp/127.0.0.1/{port}: Connection refused" in result.stderr


def test_cli_refuses_a_bad_node_count() -> None:
    result = CliRunner().invoke(group, ["up", "--nodes", "0"])
    assert result.exit_code == 2
    assert "--nodes" in result.output


# --- rootfs cache --------------------------------------------------------------------------


def test_concurrent_builders_build_once(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real locking and renaming; debootstrap replaced by a slow fake."""
    builds: list[Path] = []

    def fake_debootstrap(target: Path, *_: object) -> None:
        builds.append(target)
        (target / "etc").mkdir(parents=True)
        threading.Event().wait(0.5)
        (target / "etc/os-release").write_text("bookworm\n")

    monkeypatch.setenv("K8S_PROVISION_LAB_MIRROR", "http://mirror.example/debian")
    monkeypatch.setattr(rootfs, "_dpkg_arch", lambda: "amd64")
    monkeypatch.setattr(rootfs, "_debootstrap", fake_debootstrap)
    monkeypatch.setattr(rootfs, "_customize_base", lambda root, key: None)
    cache = short_dir / "cache"
    stale = cache / "rootfs" / f".build-{lab.recipe_key('amd64')}-99999"
    stale.mkdir(parents=True)  # what a killed builder leaves behind

    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(rootfs.ensure_base(cache, system.Progress()))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(builds) == 1
    assert len(set(results)) == 1
    assert (results[0] / "etc/os-release").read_text() == "bookworm\n"
    assert not list((cache / "rootfs").glob(".build-*"))
    info = lab.base_info(cache)
    assert info is not None
    assert info["key"] == results[0].name
    assert isinstance(info["size_bytes"], int)
    assert info["size_bytes"] > 0


def test_deb_src_entry_follows_the_machines_archive() -> None:
    text = kubernetes.deb_src_stanza("http://mirror.example/debian", Path("/k.gpg"))
    assert text.splitlines() == [
        "Types: deb-src",
        "URIs: http://mirror.example/debian",
        "Suites: bookworm",
        "Components: main",
        "Signed-By: /k.gpg",
    ]


def _fake_tools(bin_dir: Path, make_body: str) -> None:
    """`apt-get source` unpacking an empty tree, and a `make` whose body the test chooses."""
    bin_dir.mkdir()
    scripts = {
        "apt-get": 'mkdir -p "kubernetes-1.20.2/_output/local/bin/linux/amd64"\n',
        "make": make_body,
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(0o755)


def _fake_pause(out: Path, work: Path) -> Path:
    out.write_bytes(b"\x7fELF pause")
    return out


def test_kubernetes_build_caches_by_version(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = "_output/local/bin/linux/amd64"
    make = "".join(
        f'echo "+++ [x] building {b}"; echo {b} > {out}/{b}\n' for b in kubernetes.BINARIES
    )
    _fake_tools(short_dir / "bin", make)
    monkeypatch.setenv("PATH", f"{short_dir / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(kubernetes, "missing_build_tools", list)
    monkeypatch.setattr(kubernetes, "source_version", lambda: "1.20.2-1")
    monkeypatch.setattr(images, "build_pause", _fake_pause)
    cache = short_dir / "cache"

    built = kubernetes.ensure_binaries(cache, system.Progress())

    assert built == kubernetes.binaries_dir(cache, "1.20.2-1")
    assert (built / "kubelet").read_text() == "kubelet\n"
    with tarfile.open(built / kubernetes.PAUSE_ARCHIVE) as archive:
        index = json.loads(archive.extractfile("index.json").read())  # type: ignore[union-attr]
    annotations = index["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == kubernetes.PAUSE_IMAGE
    assert kubernetes.cached_versions(cache) == ["1.20.2-1"]
    info = kubernetes.build_info(cache, "1.20.2-1")
    assert info is not None
    assert isinstance(info["build_seconds"], int)
    assert not list(kubernetes.kubernetes_dir(cache).glob(".build-*"))
    # A second call finds the cache and builds nothing: a make that fails proves it.
    _fake_tools(short_dir / "bin2", "exit 2\n")
    monkeypatch.setenv("PATH", f"{short_dir / 'bin2'}:{os.environ['PATH']}")
    assert kubernetes.ensure_binaries(cache, system.Progress()) == built


def test_kubernetes_build_failure_names_the_log(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tools(short_dir / "bin", "echo 'go: module lookup disabled'; exit 2\n")
    monkeypatch.setenv("PATH", f"{short_dir / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(kubernetes, "missing_build_tools", list)
    monkeypatch.setattr(kubernetes, "source_version", lambda: "1.20.2-1")

    with pytest.raises(OperationFailed) as err:
        kubernetes.ensure_binaries(short_dir / "cache", system.Progress())

    assert "building Kubernetes failed" in err.value.message
    assert "go: module lookup disabled" in err.value.details
    assert kubernetes.cached_versions(short_dir / "cache") == []


def test_kubernetes_build_names_missing_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(kubernetes, "missing_build_tools", lambda: ["golang-go", "jq"])
    with pytest.raises(UsageError) as err:
        kubernetes.ensure_binaries(Path("/nonexistent"), system.Progress())
    assert err.value.details == ["run `apt-get install -y golang-go jq`"]


def test_kubernetes_lab_inventory_loads_as_a_1_20_cluster(
    cfg: lab.LabConfig, tmp_path: Path
) -> None:
    from k8s_provision import inventory

    path = tmp_path / "inventory.ini"
    text = lab.inventory_text(cfg, lab.lab_hosts(2), kubernetes=True)
    path.write_text(text)
    settings = inventory.load(path).settings
    assert settings.kube_version == kubernetes.KUBE_VERSION
    assert settings.kube_minor == 20
    assert settings.kube_api_port == 6443
    assert settings.kube_pki_source == str(cfg.pki_dir)
    assert settings.kube_pod_infra_image == kubernetes.PAUSE_IMAGE
    assert "--container-runtime=remote" in settings.kubelet_extra_args


def test_pod_subnets_routes_and_cni_follow_the_flannel_network() -> None:
    hosts = lab.lab_hosts(2)
    assert [str(kubehost.pod_subnet(a)) for _, a in hosts] == [
        "172.17.1.0/24",
        "172.17.2.0/24",
        "172.17.3.0/24",
    ]
    assert kubehost.pod_routes("192.168.10.2", hosts) == (
        "172.17.1.0/24 192.168.10.1\n172.17.3.0/24 192.168.10.3\n"
    )
    config = json.loads(kubehost.cni_config("192.168.10.3"))
    bridge = config["plugins"][0]
    assert bridge["type"] == "bridge"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "172.17.3.0/24"}]]
    assert f'sandbox_image = "{kubernetes.PAUSE_IMAGE}"' in kubehost.containerd_config()


def test_pause_image_archive_is_reproducible() -> None:
    first = images.image_archive(b"binary", "example.local/pause:1")
    assert first == images.image_archive(b"binary", "example.local/pause:1")
    assert first != images.image_archive(b"other", "example.local/pause:1")
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        names = archive.getnames()
        index = json.loads(archive.extractfile("index.json").read())  # type: ignore[union-attr]
    assert "oci-layout" in names and len([n for n in names if n.startswith("blobs/")]) == 3
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == (
        "example.local/pause:1"
    )


def test_a_new_lab_is_tls_with_its_pki_in_the_lab_dir(cfg: lab.LabConfig, tmp_path: Path) -> None:
    from k8s_provision import inventory

    path = tmp_path / "inventory.ini"
    path.write_text(lab.inventory_text(cfg, lab.lab_hosts(2)))
    settings = inventory.load(path).settings
    assert settings.k8s_security == "tls"
    # `lab down` removes the state dir, and the PKI with it.
    assert settings.kube_pki_source == str(cfg.pki_dir)
    path.write_text(lab.inventory_text(cfg, lab.lab_hosts(2), security="classic"))
    classic = inventory.load(path).settings
    assert (classic.k8s_security, classic.kube_pki_source) == ("classic", "")


def test_state_keeps_the_security_and_an_older_state_is_classic(cfg: lab.LabConfig) -> None:
    state = lab.LabState(config=cfg, base=Path("/b"), hosts=(), security="classic")
    assert lab.state_from_json(cfg, lab.state_to_json(state)).security == "classic"
    tls = lab.LabState(config=cfg, base=Path("/b"), hosts=())
    assert lab.state_from_json(cfg, lab.state_to_json(tls)).security == "tls"
    old = json.loads(lab.state_to_json(tls))
    del old["security"]  # written before the TLS profile: those labs were plaintext
    assert lab.state_from_json(cfg, json.dumps(old)).security == "classic"
