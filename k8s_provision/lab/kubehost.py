"""What a lab host gets for Kubernetes: the part of the CentOS kubernetes-master/-node packages
that is not configuration (units, /etc/kubernetes, the kube user), the server binaries bound in
read-only, and what lets the kubelet run pods inside systemd-nspawn (containerd with CRI, the
locally built pause image, CNI bridge/host-local, routes between the nodes' pod subnets).

Pod network: flanneld has no source or binary reachable here, so each node gets the /24 of the
flannel network flannel would lease it (the host's index: master 1, node1 2, ...), a CNI bridge
with host-local addresses from it, and a route to every other node's /24 via that node.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from k8s_provision.lab.config import SUBNET, LabConfig
from k8s_provision.lab.kubernetes import BINARIES, PAUSE_IMAGE
from k8s_provision.lab.system import run, write_file

# The network the lab inventory keeps (variables.yml's flannel_network default).
POD_NETWORK = IPv4Network("172.17.0.0/16")
IMAGES_DIR = "/usr/share/k8s-provision/images"
# The CNI network config the lab writes where flannel would give the node its pod network.
CNI_CONFIG = "/etc/cni/net.d/10-k8s-provision-lab.conflist"
_UNITS = Path(__file__).with_name("units")
_LAB_UNITS = ("k8s-provision-lab-node", "k8s-provision-lab-images", "k8s-provision-lab-routes")


def pod_subnet(address: str) -> IPv4Network:
    """The node's /24 of the pod network: its index on the lab subnet (.1 → 172.17.1.0/24)."""
    index = int(IPv4Address(address)) - int(SUBNET.network_address)
    return list(POD_NETWORK.subnets(new_prefix=24))[index]


def cni_config(address: str) -> str:
    config = {
        "cniVersion": "0.4.0",
        "name": "k8s-provision-lab",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(pod_subnet(address))}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def pod_routes(address: str, hosts: Sequence[tuple[str, str]]) -> str:
    """`<subnet> <via>` per other host: what k8s-provision-lab-routes.service installs."""
    return "".join(f"{pod_subnet(other)} {other}\n" for _, other in hosts if other != address)


def containerd_config() -> str:
    # restrict_oom_score_adj: processes here lack CAP_SYS_RESOURCE (the machine's bounding set
    # drops it), so the sandbox's default oom_score_adj of -998 would fail every pod.
    return f"""\
# Written by k8s-provision for the lab: the CRI plugin with the locally built sandbox image.
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
"""


def install_kubernetes(
    root: Path, host: str, address: str, hosts: Sequence[tuple[str, str]]
) -> None:
    """Install into a host's disk before it boots (idempotent: a host keeps its disk)."""
    for unit in sorted(_UNITS.glob("*.service")):
        write_file(root / "usr/lib/systemd/system" / unit.name, unit.read_text())
    for directory in (
        "etc/kubernetes",
        "var/lib/kubelet",
        "etc/cni/net.d",
        "etc/containerd",
        "etc/k8s-provision",
    ):
        (root / directory).mkdir(parents=True, exist_ok=True)
    write_file(root / "etc/containerd/config.toml", containerd_config())
    write_file(root / CNI_CONFIG.lstrip("/"), cni_config(address))
    write_pod_routes(root, address, hosts)
    passwd = (root / "etc/passwd").read_text()
    if not any(line.startswith("kube:") for line in passwd.splitlines()):
        useradd = ["useradd", "--system", "--no-create-home", "--home-dir", "/"]
        run(
            ["chroot", str(root), *useradd, "--shell", "/usr/sbin/nologin", "kube"],
            f"create the kube user on {host}",
        )
    # containerd is disabled in the base image (labs without Kubernetes do not need it).
    run(
        ["chroot", str(root), "systemctl", "enable", "--quiet", "containerd.service", *_LAB_UNITS],
        f"enable containerd and the lab units on {host}",
    )


def write_pod_routes(root: Path, address: str, hosts: Sequence[tuple[str, str]]) -> None:
    write_file(root / "etc/k8s-provision/lab-pod-routes", pod_routes(address, hosts))


def nspawn_options(cfg: LabConfig, host: str, binaries: Path) -> list[str]:
    """systemd-nspawn options of a host that runs Kubernetes: the binaries where the RPMs put
    them, containerd's state on the machine's own filesystem (overlayfs refuses an overlay
    upper dir as its own upper), every capability the machine has, and the keyring syscalls
    runc needs (nspawn's seccomp filter refuses them)."""
    containerd = cfg.host_dir(host) / "containerd"
    containerd.mkdir(parents=True, exist_ok=True)
    return [
        *(f"--bind-ro={binaries / b}:/usr/bin/{b}" for b in BINARIES),
        f"--bind-ro={binaries / 'images'}:{IMAGES_DIR}",
        f"--bind={containerd}:/var/lib/containerd",
        "--capability=all",
        "--system-call-filter=@keyring",
    ]
