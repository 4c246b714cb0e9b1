"""Read an Ansible inventory with ansible-core's own code and validate it into a `Cluster`.

`load` is the CLI's entry point. `build_cluster` holds every rule and works on plain mappings,
so the collection's lookup (k8s_provision.cluster.context) builds the very same model from
`groups` and `hostvars` during a playbook run."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from k8s_provision.errors import InventoryError
from k8s_provision.model import (
    FIREWALL_MODES,
    FLANNEL_BACKENDS,
    OS_FAMILIES,
    ROLE_ETCD,
    ROLE_MASTER,
    ROLE_NODE,
    Cluster,
    ConnectionSettings,
    Host,
    Settings,
    settings_field_types,
    variable_spec,
)
from k8s_provision.ssh_args import parse_ssh_args

# Group names accepted for each role, preferred name first: the classic layout, its singular
# spelling, and kubespray's names so existing inventories work unchanged.
ROLE_GROUPS: dict[str, tuple[str, ...]] = {
    ROLE_MASTER: ("masters", "master", "kube_control_plane", "kube-master"),
    ROLE_NODE: ("nodes", "kube_node", "kube-node"),
    ROLE_ETCD: ("etcd",),
}

CONNECTION_VARIABLES = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_control_path_dir",
    "ansible_python_interpreter",
    "ansible_connection",
    "ansible_become",
    "ansible_become_user",
    "ansible_become_method",
    "ansible_become_password",
    "ansible_password",
    "ansible_ssh_pass",
)

# kubespray's name for the jump host every other host is reached through.
BASTION_GROUP = "bastion"

PORT_VARIABLES = ("etcd_client_port", "etcd_peer_port", "kube_api_port", "kubelet_port")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_URL_RE = re.compile(r"^(https?://[^\s/]+|file://)/?\S*$")


class _Problems:
    """Collects every validation error so the operator sees them all in one run."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, message: str, host: str | None = None, field: str | None = None) -> None:
        where = [self.source]
        if host is not None:
            where.append(f"host {host}")
        if field is not None:
            where.append(field)
        line = ": ".join([*where, message])
        if line not in self.lines:
            self.lines.append(line)

    def raise_if_any(self) -> None:
        if self.lines:
            count = len(self.lines)
            noun = "problem" if count == 1 else "problems"
            raise InventoryError(
                f"{self.source}: invalid inventory ({count} {noun})", details=self.lines
            )


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def close_match(name: str, candidates: Sequence[str]) -> str | None:
    """A candidate one edit away (two for long names), or None. Short names are left alone:
    too many unrelated short words are one edit apart."""
    if len(name) < 4:
        return None
    limit = 2 if len(name) >= 8 else 1
    best = min(candidates, key=lambda c: edit_distance(name, c), default=None)
    if best is None or best == name:
        return None
    return best if edit_distance(name, best) <= limit else None


def known_variables() -> list[str]:
    spec = variable_spec()
    return [*spec.cluster, *spec.host, *CONNECTION_VARIABLES]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _coerce(value: Any, kind: type) -> Any:
    """Turn an inventory value (INI gives strings) into the variable's type, or raise ValueError."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean (use true or false)")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a whole number")
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected a string, got a {type(value).__name__}")
    return str(value)


def _role_members(
    groups: Mapping[str, Sequence[str]], problems: _Problems
) -> tuple[list[str] | None, list[str] | None, list[str] | None]:
    def members(role: str) -> list[str] | None:
        present = [g for g in ROLE_GROUPS[role] if g in groups]
        if not present:
            return None
        chosen = [str(h) for h in groups[present[0]]]
        for other in present[1:]:
            if sorted(str(h) for h in groups[other]) != sorted(chosen):
                problems.add(
                    f"groups {present[0]!r} and {other!r} both name the {role} hosts but differ;"
                    " keep one of them",
                    field=other,
                )
        return chosen

    return members(ROLE_MASTER), members(ROLE_NODE), members(ROLE_ETCD)


def _typo_group_hint(groups: Mapping[str, Sequence[str]], host: str) -> str:
    all_role_names = [name for names in ROLE_GROUPS.values() for name in names]
    for group, hosts in groups.items():
        if host in hosts and group not in ("all", "ungrouped"):
            match = close_match(group, all_role_names)
            if match:
                return f"; group {group!r} looks like a typo of {match!r}"
    return ""


def _check_roles(
    groups: Mapping[str, Sequence[str]], problems: _Problems
) -> tuple[list[str], list[str], list[str]]:
    masters, nodes, etcd = _role_members(groups, problems)
    accepted = ", ".join(ROLE_GROUPS[ROLE_MASTER])
    if masters is None:
        hint = ""
        for group in groups:
            match = close_match(group, ROLE_GROUPS[ROLE_MASTER])
            if match:
                hint = f"; group {group!r} looks like a typo of {match!r}"
        problems.add(f"no masters group (accepted names: {accepted}){hint}", field="masters")
        masters = []
    elif not masters:
        problems.add("the masters group is empty; it needs exactly one host", field="masters")
    elif len(masters) > 1:
        problems.add(
            f"{len(masters)} hosts ({', '.join(masters)}); the classic layout has exactly one"
            " master",
            field="masters",
        )
    if not nodes:
        what = "no nodes group" if nodes is None else "the nodes group is empty"
        accepted_nodes = ", ".join(ROLE_GROUPS[ROLE_NODE])
        problems.add(
            f"{what} (accepted names: {accepted_nodes}); at least one node is needed",
            field="nodes",
        )
        nodes = []
    if not etcd:
        # The reference layout runs an etcd member on every master and node.
        etcd = list(dict.fromkeys([*masters, *nodes]))
    return masters, nodes, etcd


def _setting_values(
    all_hosts: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    problems: _Problems,
) -> dict[str, Any]:
    defaults = variable_spec().cluster
    values: dict[str, Any] = {}
    for name, kind in settings_field_types().items():
        seen: dict[Any, list[str]] = {}
        for host in all_hosts:
            raw = hostvars[host].get(name, defaults[name])
            try:
                value = _coerce(raw, kind)
            except ValueError as err:
                problems.add(str(err), host=host, field=name)
                continue
            seen.setdefault(value, []).append(host)
        if len(seen) > 1:
            listing = "; ".join(f"{v!r} on {', '.join(h)}" for v, h in seen.items())
            problems.add(
                f"differs between hosts ({listing}); it is cluster-wide: set it once for all",
                field=name,
            )
        values[name] = next(iter(seen), _coerce(defaults[name], kind))
    return values


def _network(value: str, field: str, problems: _Problems) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f" (did you mean {ipaddress.ip_network(value, strict=False)}?)"
        problems.add(f"{value!r} is not a valid CIDR network: {err}{hint}", field=field)
        return None
    if not isinstance(net, ipaddress.IPv4Network):
        problems.add(f"{value!r}: only IPv4 networks are supported", field=field)
        return None
    return net


def _check_settings(values: dict[str, Any], problems: _Problems) -> None:
    for port in PORT_VARIABLES:
        if not 1 <= values[port] <= 65535:
            problems.add(f"{values[port]} is out of range (1-65535)", field=port)
    if values["etcd_client_port"] == values["etcd_peer_port"]:
        problems.add("must differ from etcd_client_port", field="etcd_peer_port")
    if values["k8s_os_family"] not in OS_FAMILIES:
        problems.add(
            f"{values['k8s_os_family']!r} is not one of {', '.join(OS_FAMILIES)}",
            field="k8s_os_family",
        )
    if values["firewall_mode"] not in FIREWALL_MODES:
        problems.add(
            f"{values['firewall_mode']!r} is not one of {', '.join(FIREWALL_MODES)}",
            field="firewall_mode",
        )
    if not _URL_RE.match(values["k8s_yum_baseurl"]):
        problems.add(
            f"{values['k8s_yum_baseurl']!r} is not an http://, https:// or file:// URL",
            field="k8s_yum_baseurl",
        )
    if values["flannel_backend"] not in FLANNEL_BACKENDS:
        problems.add(
            f"{values['flannel_backend']!r} is not one of {', '.join(FLANNEL_BACKENDS)}",
            field="flannel_backend",
        )
    prefix = values["flannel_etcd_prefix"]
    if not _PREFIX_RE.match(prefix):
        problems.add(
            f"{prefix!r} is not an absolute etcd key path like /atomic.io/network"
            " (leading /, no trailing /, letters, digits, . _ -)",
            field="flannel_etcd_prefix",
        )
    if not _TOKEN_RE.match(values["etcd_cluster_token"]):
        problems.add("must be non-empty letters, digits, . _ -", field="etcd_cluster_token")
    if not _is_ip(values["kube_api_address"]):
        problems.add(
            f"{values['kube_api_address']!r} is not an IP address", field="kube_api_address"
        )
    if values["kube_log_level"] < 0:
        problems.add("must be 0 or more", field="kube_log_level")
    for name, value in values.items():
        if isinstance(value, str) and ('"' in value or "\n" in value or "\\" in value):
            problems.add(
                "must not contain double quotes, backslashes or newlines (it is written into a"
                " quoted environment file)",
                field=name,
            )


def _check_networks(values: dict[str, Any], hosts: Sequence[Host], problems: _Problems) -> None:
    flannel = _network(values["flannel_network"], "flannel_network", problems)
    service = _network(values["kube_service_addresses"], "kube_service_addresses", problems)
    if flannel is not None and flannel.prefixlen > 23:
        problems.add(
            f"{flannel} is too small: flannel leases a /24 to each host, so use /23 or larger",
            field="flannel_network",
        )
    if flannel is not None and service is not None and flannel.overlaps(service):
        problems.add(
            f"{flannel} overlaps kube_service_addresses {service}", field="flannel_network"
        )
    dns = values["kube_cluster_dns"]
    if dns:
        if not _is_ip(dns):
            problems.add(f"{dns!r} is not an IP address", field="kube_cluster_dns")
        elif service is not None and ipaddress.ip_address(dns) not in service:
            problems.add(
                f"{dns} is outside kube_service_addresses {service}", field="kube_cluster_dns"
            )
    for host in hosts:
        if not _is_ip(host.ip):
            continue
        address = ipaddress.ip_address(host.ip)
        for net, name in ((flannel, "flannel_network"), (service, "kube_service_addresses")):
            if net is not None and address in net:
                problems.add(
                    f"{host.ip} lies inside {name} {net}: host and cluster networks overlap",
                    host=host.name,
                    field="ip",
                )


def _connection(vars_: Mapping[str, Any]) -> ConnectionSettings:
    def text(name: str) -> str | None:
        value = vars_.get(name)
        return None if value in (None, "") else str(value)

    port = text("ansible_port")
    become = vars_.get("ansible_become", False)
    return ConnectionSettings(
        user=text("ansible_user"),
        port=int(port) if port and port.isdigit() else None,
        private_key_file=text("ansible_ssh_private_key_file"),
        ssh_common_args=text("ansible_ssh_common_args"),
        ssh_extra_args=text("ansible_ssh_extra_args"),
        become=_coerce(become, bool) if str(become).lower() in _TRUE | _FALSE else False,
        become_user=text("ansible_become_user"),
        python_interpreter=text("ansible_python_interpreter"),
    )


def _build_hosts(
    all_hosts: Sequence[str],
    roles: dict[str, set[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    problems: _Problems,
) -> list[Host]:
    hosts: list[Host] = []
    for name in all_hosts:
        vars_ = hostvars[name]
        host_roles = frozenset(role for role, members in roles.items() if name in members)
        if not host_roles:
            problems.add(
                "is in no role group (masters, nodes or etcd)" + _typo_group_hint(groups, name),
                host=name,
            )
        address = str(vars_.get("ansible_host") or name)
        ip_set = str(vars_.get("ip") or "")
        ip = ip_set or address
        if ip_set and not _is_ip(ip_set):
            problems.add(f"{ip_set!r} is not a valid IP address", host=name, field="ip")
        elif not _is_ip(ip):
            why = (
                "etcd members listen on IP addresses"
                if ROLE_ETCD in host_roles
                else ("cluster services bind to IP addresses")
            )
            problems.add(
                f"no IP address: ansible_host {address!r} is a name and {why}; set ip=<address>",
                host=name,
                field="ip",
            )
        port = vars_.get("ansible_port")
        if port not in (None, "") and not (str(port).isdigit() and 1 <= int(port) <= 65535):
            problems.add(
                f"{port!r} is not a port number (1-65535)", host=name, field="ansible_port"
            )
        node_name = str(vars_.get("kube_node_name") or name)
        iface = str(vars_.get("flannel_iface") or "")
        for field, value in (("kube_node_name", node_name), ("flannel_iface", iface)):
            if value and not _TOKEN_RE.match(value):
                problems.add(f"{value!r} may hold only letters, digits, . _ -", name, field)
        hosts.append(
            Host(
                name=name,
                address=address,
                ip=ip,
                roles=host_roles,
                kube_node_name=node_name,
                flannel_iface=iface,
                connection=_connection(vars_),
            )
        )
    return hosts


def _check_duplicates(hosts: Sequence[Host], problems: _Problems) -> None:
    def report(key: Callable[[Host], str], field: str, what: str) -> None:
        owners: dict[str, list[str]] = {}
        for host in hosts:
            owners.setdefault(key(host), []).append(host.name)
        for value, names in owners.items():
            if len(names) > 1:
                problems.add(
                    f"duplicate {what} {value!r}: hosts {', '.join(names)}", names[1], field
                )

    report(lambda h: h.ip, "ip", "address")
    report(lambda h: f"{h.address}:{h.connection.port or 22}", "ansible_host", "SSH address")
    report(lambda h: h.kube_node_name, "kube_node_name", "node name")


def _check_typos(
    all_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], problems: _Problems
) -> None:
    known = known_variables()
    known_set = set(known)
    for host in all_hosts:
        for name in hostvars[host]:
            if name in known_set:
                continue
            match = close_match(name, known)
            if match:
                problems.add(f"unknown variable (did you mean {match!r}?)", host=host, field=name)


def build_cluster(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    source: str,
    *,
    check_typos: bool = True,
) -> Cluster:
    """Validate groups and variables into a Cluster, or raise InventoryError listing every
    problem. `hostvars` maps each host to its resolved variables."""
    problems = _Problems(source)
    masters, nodes, etcd = _check_roles(groups, problems)
    bastion = _bastion(groups, hostvars, problems)
    members = {*masters, *nodes, *etcd}
    all_hosts = [
        str(h)
        for h in groups.get("all", [])
        if bastion is None or h != bastion.name or h in members
    ]
    missing = [h for h in [*masters, *nodes, *etcd] if h not in all_hosts]
    all_hosts += list(dict.fromkeys(missing))
    if not all_hosts:
        problems.add("no hosts")
    roles = {ROLE_MASTER: set(masters), ROLE_NODE: set(nodes), ROLE_ETCD: set(etcd)}
    hosts = _build_hosts(all_hosts, roles, hostvars, groups, problems)
    if bastion is not None:
        hosts = [_through(host, bastion) for host in hosts]
    values = _setting_values(all_hosts, hostvars, problems)
    _check_settings(values, problems)
    _check_duplicates(hosts, problems)
    if "flannel_network" in values and "kube_service_addresses" in values:
        _check_networks(values, hosts, problems)
    if len(etcd) % 2 == 0 and etcd and not values.get("etcd_allow_even_members", False):
        problems.add(
            f"{len(etcd)} members ({', '.join(etcd)}): an even count tolerates no more failures"
            f" than {len(etcd) - 1}; use an odd number or set etcd_allow_even_members=true",
            field="etcd",
        )
    if check_typos:
        _check_typos(all_hosts, hostvars, problems)
    problems.raise_if_any()
    return Cluster(
        source=source,
        hosts=tuple(hosts),
        masters=tuple(masters),
        nodes=tuple(nodes),
        etcd=tuple(etcd),
        settings=Settings(**{f.name: values[f.name] for f in fields(Settings)}),
        bastion=bastion,
    )


def _bastion(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    problems: _Problems,
) -> Host | None:
    names = [str(h) for h in groups.get(BASTION_GROUP, [])]
    if not names:
        return None
    if len(names) > 1:
        problems.add(
            f"{len(names)} hosts ({', '.join(names)}); give exactly one bastion",
            field=BASTION_GROUP,
        )
    name = names[0]
    vars_ = hostvars[name]
    return Host(
        name=name,
        address=str(vars_.get("ansible_host") or name),
        ip="",
        roles=frozenset(),
        kube_node_name="",
        flannel_iface="",
        connection=_connection(vars_),
    )


def _through(host: Host, bastion: Host) -> Host:
    """Route the host through the bastion unless it is the bastion or has a proxy of its own."""
    conn = host.connection
    own = parse_ssh_args(conn.ssh_common_args, conn.ssh_extra_args)
    if host.name == bastion.name or own.proxy_command or own.proxy_jump:
        return host
    return replace(host, connection=replace(conn, via=bastion))


# Reading the inventory through ansible-core.

_YAML_SUFFIXES = (".yml", ".yaml", ".json")


def _check_source(path: Path) -> None:
    if not path.exists():
        raise InventoryError(f"{path}: no such file or directory")
    if path.is_dir():
        return
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InventoryError(f"{path}: cannot read: {err.strerror}") from None
    if not data.strip():
        raise InventoryError(f"{path}: the inventory is empty")
    if b"\0" in data:
        raise InventoryError(f"{path}: binary data, not an INI or YAML inventory")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InventoryError(f"{path}: not UTF-8 text (byte {err.start})") from None


_ORIGIN_RE = re.compile(r"^Origin: (\S+)|appears to be in '([^']+)'", re.MULTILINE)


def _first_line(err: BaseException) -> str:
    """ansible-core's multi-line error as one line, with the file it points at (2.19 says
    "Origin: FILE", older releases "appears to be in 'FILE'")."""
    text = getattr(err, "message", None) or str(err)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    origin = _ORIGIN_RE.search(str(err))
    where = origin.group(1) or origin.group(2) if origin else None
    cause: BaseException | None = err
    while where is None and cause is not None:
        # 2.19 keeps the file position on a chained exception's `obj`.
        obj = getattr(cause, "obj", None)
        where = str(obj) if obj else None
        cause = cause.__cause__ or cause.__context__
    return f"{first} (in {where})" if where else first


@contextlib.contextmanager
def _quiet_ansible() -> Iterator[None]:
    """ansible-core prints warnings (e.g. a host and a group sharing a name) on stderr; the
    loader reports problems itself."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


def _parse_with_plugin(path: Path, loader: Any) -> None:
    """Parse with the plugin the file's name implies, to report that plugin's own error."""
    from ansible.inventory.data import InventoryData
    from ansible.plugins.loader import inventory_loader

    order = ["yaml"] if path.suffix in _YAML_SUFFIXES else ["ini", "yaml"]
    errors: list[str] = []
    for name in order:
        plugin = inventory_loader.get(name)
        try:
            plugin.parse(InventoryData(), loader, str(path.resolve()), cache=False)
        except Exception as err:  # ansible raises several types; all mean "not parsable"
            errors.append(f"{name}: {_first_line(err)}")
            continue
        return
    kinds = " or ".join(n.upper() for n in order)
    raise InventoryError(f"{path}: not a valid {kinds} inventory ({errors[0]})")


class _ResolvedVars(Mapping[str, Any]):
    """A host's variables with Jinja expressions resolved on access, as Ansible would."""

    def __init__(self, variables: Mapping[str, Any], templar: Any) -> None:
        self._vars = variables
        self._templar = templar

    def __getitem__(self, key: str) -> Any:
        value = self._vars[key]
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return self._templar.template(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)


_MAGIC_VARIABLES = frozenset(
    {
        "ansible_config_file",
        "ansible_facts",
        "ansible_playbook_python",
        "ansible_version",
        "group_names",
        "groups",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "playbook_dir",
        "omit",
        "role_names",
        "ansible_check_mode",
        "ansible_diff_mode",
        "ansible_forks",
        "ansible_inventory_sources",
        "ansible_run_tags",
        "ansible_skip_tags",
        "ansible_verbosity",
    }
)


def _read_with_ansible(path: Path) -> tuple[dict[str, list[str]], dict[str, Mapping[str, Any]]]:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    with _quiet_ansible():
        if path.is_file():
            _parse_with_plugin(path, loader)
        try:
            manager = InventoryManager(loader=loader, sources=[str(path)])
        except AnsibleError as err:
            raise InventoryError(f"{path}: {_first_line(err)}") from None
        if not manager.get_hosts() and str(path) not in manager._inventory.processed_sources:
            raise InventoryError(f"{path}: no INI or YAML inventory found there")
        variables = VariableManager(loader=loader, inventory=manager)
        groups = {
            name: [str(h) for h in hosts] for name, hosts in manager.get_groups_dict().items()
        }
        hostvars: dict[str, Mapping[str, Any]] = {}
        for host in manager.get_hosts():
            try:
                # Through the VariableManager, not Host.vars: when a host and a group share a
                # name, ansible-core files the host's INI variables under the group.
                merged = variables.get_vars(host=host, include_hostvars=False)
            except AnsibleError as err:
                raise InventoryError(f"{path}: host {host.name}: {_first_line(err)}") from None
            own = {k: v for k, v in merged.items() if k not in _MAGIC_VARIABLES}
            hostvars[host.name] = _ResolvedVars(own, Templar(loader=loader, variables=merged))
    return groups, hostvars


def load(path: str | Path) -> Cluster:
    """Read and validate the inventory at `path` (an INI or YAML file, or a directory)."""
    source = Path(path)
    _check_source(source)
    groups, hostvars = _read_with_ansible(source)
    try:
        return build_cluster(groups, hostvars, str(path))
    except InventoryError:
        raise
    except Exception as err:  # a Jinja expression in the inventory that cannot resolve
        raise InventoryError(f"{path}: cannot resolve a variable: {_first_line(err)}") from None
