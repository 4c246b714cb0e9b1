"""The local test lab: Debian hosts booted with systemd-nspawn, each in its own network
namespace, reachable over SSH from the machine's own namespace through a ProxyCommand.

Layout of one lab (name `k8sp` by default):

- netns `<name>-net` holds bridge `br0` (192.168.10.254/24); the relay of the SSH ProxyCommand
  runs there. The machine's own netns never gets a route to the lab subnet.
- per host, netns `<name>-<host>` with `eth0` (a veth to the bridge), an overlay mount over
  the cached base rootfs, cgroups `<hierarchy>/<name>/<host>`, and one systemd-nspawn process.
- the state directory holds the state file (PIDs), SSH key, known_hosts, inventory, ssh_config,
  SSH control sockets, and each host's disk (overlay upper dir) and console log.

Everything the lab starts is recorded by PID (with the process start time, so a reused PID is
never mistaken for ours) and stopped by PID. See docs/lab.md for how to use it.


Modules: config (model and state file), rootfs (base image), network (namespaces, relays),
machines (boot and stop hosts), inventory (access files), system (processes, mounts, locks),
api (the operations below), kubernetes (the server binaries built from Debian's source).
"""

from k8s_provision.lab.api import (
    build_kubernetes,
    down,
    install_dependencies,
    inventory_path,
    missing_requirements,
    require_environment,
    status,
    up,
)
from k8s_provision.lab.config import (
    BRIDGE_ADDRESS,
    CGROUP_ROOT,
    DEFAULT_CACHE_DIR,
    DEFAULT_LABS_DIR,
    DEFAULT_NAME,
    LOCK_DIR,
    MAX_NODES,
    NETNS_DIR,
    SUBNET,
    HostState,
    HostStatus,
    LabConfig,
    LabState,
    LabStatus,
    check_nodes,
    etcd_members,
    lab_hosts,
    make_config,
    state_from_json,
    state_to_json,
)
from k8s_provision.lab.inventory import (
    RELAY_SCRIPT,
    hosts_file_text,
    inventory_text,
    known_hosts_lines,
    proxy_command,
    relay_command,
    ssh_config_text,
)
from k8s_provision.lab.rootfs import (
    PACKAGES,
    RECIPE_VERSION,
    SUITE,
    AptSource,
    apt_source,
    base_info,
    recipe_key,
)
from k8s_provision.lab.ssh import ssh_argv, ssh_interactive, ssh_run

__all__ = [
    "BRIDGE_ADDRESS",
    "CGROUP_ROOT",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_LABS_DIR",
    "DEFAULT_NAME",
    "LOCK_DIR",
    "MAX_NODES",
    "NETNS_DIR",
    "PACKAGES",
    "RECIPE_VERSION",
    "RELAY_SCRIPT",
    "SUBNET",
    "SUITE",
    "AptSource",
    "HostState",
    "HostStatus",
    "LabConfig",
    "LabState",
    "LabStatus",
    "apt_source",
    "base_info",
    "build_kubernetes",
    "check_nodes",
    "down",
    "etcd_members",
    "hosts_file_text",
    "install_dependencies",
    "inventory_path",
    "inventory_text",
    "known_hosts_lines",
    "lab_hosts",
    "make_config",
    "missing_requirements",
    "proxy_command",
    "recipe_key",
    "relay_command",
    "require_environment",
    "ssh_argv",
    "ssh_config_text",
    "ssh_interactive",
    "ssh_run",
    "state_from_json",
    "state_to_json",
    "status",
    "up",
]
