"""The files that let Ansible, ssh and the tests reach lab hosts: inventory, ssh_config,
known_hosts and each host's /etc/hosts."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from k8s_provision.lab.config import NETNS_DIR, LabConfig, LabState, etcd_members
from k8s_provision.lab.kubehost import write_pod_routes
from k8s_provision.lab.kubernetes import KUBE_VERSION, KUBELET_RUNTIME_ARGS, PAUSE_IMAGE
from k8s_provision.lab.system import is_mounted, write_file

# The relay ssh and paramiko run as their ProxyCommand to reach a lab host from the machine's
# own network namespace: bash's /dev/tcp and two cats, since a fresh machine has neither nc nor
# socat. A Python relay cost about 30 ms of CPU per connection, the largest part of what
# verify spends per host. Once connected it lets go of the caller's stderr (an ssh
# ControlPersist master keeps its relay for minutes, and a held stderr pipe would keep the
# process that started it waiting for EOF); the copy to the host ends when the client closes
# stdin, the copy back (the relay process itself, for `kill_relays` and the client's kill)
# when the host closes the connection. No double quotes: the inventory quotes it in them.
RELAY_SCRIPT = "exec 3<>/dev/tcp/$0/$1 4<&0 || exit 1; exec 2>/dev/null; cat <&4 >&3 & exec cat <&3"


def relay_command(prefix: Sequence[str] = ()) -> str:
    """The relay as a ProxyCommand (shell text with ssh's %h %p), run after `prefix`."""
    return shlex.join([*prefix, "bash", "-c", RELAY_SCRIPT]) + " %h %p"


def proxy_command(config: LabConfig) -> str:
    """The ProxyCommand that enters the lab network to connect."""
    return relay_command(["nsenter", f"--net={NETNS_DIR / config.net_ns}"])


def inventory_text(
    config: LabConfig,
    hosts: Sequence[tuple[str, str]],
    *,
    kubernetes: bool = False,
    security: str = "tls",
) -> str:
    """The lab's Ansible inventory. Plain ansible, ansible-playbook and paramiko (which honours
    ProxyCommand) use it from the machine's own netns, with host key checking on. With
    `kubernetes` (the hosts have the server binaries) it selects Kubernetes 1.20 and the lab's
    PKI, pause image and container runtime. `security` is its k8s_security; with tls the
    cluster PKI lives in the lab's state directory, so `lab down` removes it with the lab."""

    def line(name: str, address: str) -> str:
        return f"{name} ansible_host={address} ip={address}"

    names = [name for name, _ in hosts]
    common_args = " ".join(
        [
            f"-o UserKnownHostsFile={config.known_hosts}",
            "-o StrictHostKeyChecking=yes",
            f'-o ProxyCommand="{proxy_command(config)}"',
        ]
    )
    sections = [
        f"# Written by `k8s-provision lab up` for lab {config.name}; rewritten on every change.",
        "[masters]",
        *(line(n, a) for n, a in hosts if n == "master"),
        "",
        "[nodes]",
        *(line(n, a) for n, a in hosts if n != "master"),
        "",
        "[etcd]",
        *etcd_members(names),
        "",
        "[all:vars]",
        "ansible_user=root",
        f"ansible_ssh_private_key_file={config.key}",
        "ansible_python_interpreter=/usr/bin/python3",
        "k8s_os_family=debian",
        f"k8s_security={security}",
        f"ansible_ssh_common_args={common_args}",
        "# Every lab uses the same addresses: ControlPersist sockets of their own keep Ansible",
        "# from reusing a connection to another lab's host.",
        f"ansible_control_path_dir={config.control_dir}",
    ]
    if kubernetes:
        sections += [f"{name}={value}" for name, value in kubernetes_vars(config).items()]
    elif security == "tls":
        sections.append(f"kube_pki_source={config.pki_dir}")
    return "\n".join(sections) + "\n"


def kubernetes_vars(config: LabConfig) -> dict[str, str]:
    """The lab's Kubernetes settings: the version its binaries are (1.20, secure port only),
    the PKI made for it, and the pause image and runtime its hosts have locally."""
    return {
        "kube_version": KUBE_VERSION,
        "kube_api_port": "6443",
        # ServiceAccount works here: the PKI has the service account key pair.
        "kube_admission_control": (
            "NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,NodeRestriction"
        ),
        "kube_pki_source": str(config.pki_dir),
        "kube_binaries_provided": "true",
        "kube_pod_infra_image": PAUSE_IMAGE,
        "kubelet_extra_args": " ".join(KUBELET_RUNTIME_ARGS),
        # nf_conntrack_max is global to the machine and read-only inside the hosts.
        "kube_proxy_extra_args": "--conntrack-max-per-core=0",
    }


def ssh_config_text(config: LabConfig, hosts: Sequence[tuple[str, str]]) -> str:
    """An ssh_config for `ssh -F <state>/ssh_config HOST`; also what `lab ssh` and `ssh_run`
    use. Control sockets stay in the lab dir so `lab down` can close them."""
    lines = [f"# Written by `k8s-provision lab up` for lab {config.name}."]
    for name, address in hosts:
        lines += [f"Host {name}", f"    HostName {address}"]
    lines += [
        "Host *",
        "    User root",
        f"    IdentityFile {config.key}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {config.known_hosts}",
        "    StrictHostKeyChecking yes",
        f"    ProxyCommand {proxy_command(config)}",
        "    ControlMaster auto",
        f"    ControlPath {config.control_dir}/%r@%h:%p",
        "    ControlPersist 60",
        "    BatchMode yes",
        "    ConnectTimeout 10",
        "    LogLevel ERROR",
    ]
    return "\n".join(lines) + "\n"


def hosts_file_text(hosts: Sequence[tuple[str, str]]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address}\t{name}" for name, address in hosts]
    return "\n".join(lines) + "\n"


def known_hosts_lines(name: str, address: str, public_keys: Sequence[str]) -> list[str]:
    """known_hosts entries for one host, under its address (what ansible connects to) and name."""
    lines = []
    for key in public_keys:
        fields = key.split()
        if len(fields) >= 2:
            lines.append(f"{name},{address} {fields[0]} {fields[1]}")
    return lines


def refresh_hosts_files(cfg: LabConfig, state: LabState) -> None:
    """New hosts joined: rewrite /etc/hosts (and, with Kubernetes, the routes to the nodes'
    pod subnets) on the running ones through their mounted disks."""
    pairs = [(h.name, h.address) for h in state.hosts]
    text = hosts_file_text(pairs)
    for host in state.hosts:
        root = cfg.host_root(host.name)
        if is_mounted(root):
            write_file(root / "etc/hosts", text)
            if state.kubernetes is not None:
                write_pod_routes(root, host.address, pairs)


def write_access_files(cfg: LabConfig, state: LabState) -> None:
    """known_hosts (from each host's disk), inventory and ssh_config."""
    lines: list[str] = []
    for host in state.hosts:
        keys_dir = cfg.host_dir(host.name) / "upper/etc/ssh"
        keys = [p.read_text() for p in sorted(keys_dir.glob("ssh_host_*_key.pub"))]
        lines += known_hosts_lines(host.name, host.address, keys)
    pairs = [(h.name, h.address) for h in state.hosts]
    write_file(cfg.known_hosts, "\n".join(lines) + "\n", only_if_changed=True)
    inventory = inventory_text(
        cfg, pairs, kubernetes=state.kubernetes is not None, security=state.security
    )
    write_file(cfg.inventory, inventory, only_if_changed=True)
    write_file(cfg.ssh_config, ssh_config_text(cfg, pairs), only_if_changed=True)
