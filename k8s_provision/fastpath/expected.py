"""What site.yml leaves on a host once converged, taken from site.yml's own tasks and role
variables evaluated for the host (`playbook`), and the rendered bytes of `render`.

Every state-changing task maps to one fingerprint kind (`KINDS`); a task this module cannot
place raises, so a new kind of task fails the coverage test instead of going unchecked."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s_provision import facts, pki, service_state
from k8s_provision.fastpath.playbook import RUNTIME, Task, Variables, plays, role_tasks
from k8s_provision.model import Cluster, Host
from k8s_provision.render import host_context, render_host

KINDS = (
    "file",  # a rendered or copied file: content, mode, owner, group
    "file-parents",  # the directories of planned files: exist when the files do
    "directory",  # a directory the roles create with its owner and mode
    "package",
    "unit",  # enabled and active (or disabled and stopped)
    "config-freshness",  # a service started after its configuration files were written
    "sysctl",  # live kernel settings
    "kernel-module",  # loaded kernel modules
    "firewall",
    "selinux",
    "hostname",
    "hosts-block",  # the cluster hosts block of /etc/hosts
    "yum-repo",
    "etcd-membership",  # cluster-wide, read from one member
    "flannel-key",  # cluster-wide, read from one member
)
CLUSTER_WIDE_KINDS = frozenset({"etcd-membership", "flannel-key"})

# A bare host, for evaluating which files a task manages: the roles' stale-file filter then
# returns every file the task writes.
_BARE_HOST = {"preflight_config_files": {"files": []}, "ansible_check_mode": False}
_FIREWALL_COMMANDS = ("firewall-cmd",)


@dataclass(frozen=True)
class ExpectedFile:
    path: str
    sha256: str
    mode: str  # as stat's %a prints it: "644"
    owner: str
    group: str
    component: str = ""


@dataclass(frozen=True)
class ExpectedDirectory:
    path: str
    mode: str
    owner: str
    group: str


@dataclass(frozen=True)
class ExpectedUnit:
    name: str
    active: bool
    enabled: bool


@dataclass(frozen=True)
class Firewall:
    mode: str  # open or disable
    ports: tuple[str, ...]
    trusted: str  # the source the trusted zone must hold


@dataclass(frozen=True)
class Repo:
    path: str
    section: str
    values: Mapping[str, str]


@dataclass(frozen=True)
class Covered:
    """One state-changing task and the fingerprint kind that covers it."""

    source: str
    task: str
    kind: str


@dataclass
class _Builder:
    files: dict[str, ExpectedFile] = field(default_factory=dict)
    directories: dict[str, ExpectedDirectory] = field(default_factory=dict)
    packages: list[str] = field(default_factory=list)
    package_query: str = ""
    units: dict[str, ExpectedUnit] = field(default_factory=dict)
    sysctl: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = ()
    hosts_lines: tuple[str, ...] | None = None
    hosts_markers: tuple[str, str] = ("", "")
    hostname: str | None = None
    selinux_permissive: bool = False
    repos: list[Repo] = field(default_factory=list)
    firewall: Firewall | None = None
    restarts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    flannel_key: tuple[str, str] | None = None
    coverage: list[Covered] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """One host's converged state."""

    host: str
    files: tuple[ExpectedFile, ...]
    directories: tuple[ExpectedDirectory, ...]
    packages: tuple[str, ...]
    package_query: str
    units: tuple[ExpectedUnit, ...]
    sysctl: Mapping[str, str]
    modules: tuple[str, ...]
    hosts_lines: tuple[str, ...] | None
    hosts_markers: tuple[str, str]
    hostname: str | None
    selinux_permissive: bool
    repos: tuple[Repo, ...]
    firewall: Firewall | None
    restarts: Mapping[str, tuple[str, ...]]  # unit -> the config files it runs with
    flannel_key: tuple[str, str] | None  # (key, value) on the host that stores it
    coverage: tuple[Covered, ...]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _mode(value: Any) -> str:
    return str(value).lstrip("0") or "0"


def _names(variables: Variables, task: Task, value: Any) -> list[Any]:
    """A task argument for each loop item (`{{ item }}` expanded), or the argument once."""
    loop = task.data.get("loop")
    if loop is None:
        return [variables.with_task(task).render(value)]
    items = variables.with_task(task).render(loop)
    if items is RUNTIME:
        raise ValueError(f"{task.source}: '{task.name}': its loop is known only during a run")
    return [variables.with_task(task, item=item).render(value) for item in items]


def _is_handler(task: Task) -> bool:
    return task.source.endswith("handlers/main.yml")


def _notify(task: Task) -> list[Any]:
    notify = task.data.get("notify") or []
    return notify if isinstance(notify, list) else [notify]


class _Reader:
    """Turns one host's applicable tasks into expected state."""

    def __init__(self, cluster: Cluster, host: Host, in_container: bool) -> None:
        self.cluster, self.host = cluster, host
        # The value the context lookup gives the roles: the context plus the facts.
        self.k8s = {**host_context(cluster, host.name), "facts": facts.context(cluster, host)}
        self.rendered = render_host(cluster, host.name)
        self.extra = {**_BARE_HOST, "prerequisites_in_container": in_container}
        self.out = _Builder()

    def read(self) -> _Builder:
        groups = Variables(("preflight",), self.k8s).value("preflight_groups")
        for play in plays():
            if play.hosts not in groups:
                continue
            for role in play.roles:
                tasks = role_tasks(role)
                roles = tuple(dict.fromkeys([role, *(t.role for t in tasks)]))
                variables = Variables(roles, self.k8s, self.extra)
                notified = {
                    str(n)
                    for t in tasks
                    if not _is_handler(t) and variables.applies(t)
                    for n in _notify(t)
                }
                for task in tasks:
                    if _is_handler(task) and not {task.name, task.data.get("listen")} & notified:
                        continue  # a handler acts only when an applicable task notifies it
                    if task.changes_state and variables.applies(task):
                        kind = self.task(variables, task, tasks)
                        self.out.coverage.append(Covered(task.source, task.name, kind))
        return self.out

    def task(self, v: Variables, task: Task, tasks: Iterable[Task]) -> str:
        module, args = task.module, task.args
        if task.source.endswith("join.yml") or (
            module == "raw" and "member add" in str(args.get("_raw"))
        ):
            return "etcd-membership"  # a joiner's steps; the membership itself is compared
        if "/etcd/tasks/migrate" in task.source or task.args.get("_raw") == (
            "{{ k8s.facts.etcd_migration_probe }}"
        ):
            # The tls migration's steps: the membership's peer URLs and the configuration each
            # member runs with are compared, and its runtime files must not exist once done.
            return "etcd-membership"
        if module == "raw" and "config_record_script" in str(args.get("_raw")):
            # The record of the configuration a service started with: compared through the
            # config-state probe, with the restart it follows.
            return "config-freshness"
        if module in ("template", "copy"):
            return self.file(v, task)
        if module == "file":
            return self.directory(v, task)
        if module == "systemd_service" and task.args.get("name") == "systemd-modules-load":
            # Loads the modules the copied modules-load file lists, now rather than at boot.
            self.out.modules = tuple(v.value("prerequisites_kernel_modules"))
            return "kernel-module"
        if module == "systemd_service":
            return self.unit(v, task, tasks)
        if module == "package":
            names = v.with_task(task).value("packages_names")
            self.out.packages += [n for n in names if n not in self.out.packages]
            query = v.with_task(task).value("packages_query")
            self.out.package_query = query[self.cluster.settings.k8s_os_family]
            return "package"
        if module == "command":
            return self.command(v, task)
        if module == "replace" and args.get("path") == "/etc/selinux/config":
            self.out.selinux_permissive = True
            return "selinux"
        if module == "hostname":
            self.out.hostname = str(v.render(args["name"]))
            return "hostname"
        if module == "blockinfile":
            lines = v.value("prerequisites_hosts_lines")
            self.out.hosts_lines = tuple(lines)
            marker = str(args["marker"])
            self.out.hosts_markers = (
                marker.replace("{mark}", "BEGIN"),
                marker.replace("{mark}", "END"),
            )
            return "hosts-block"
        if module == "yum_repository":
            return self.repo(v, task)
        if module == "uri":
            key = v.value("flannel_key")
            self.out.flannel_key = (str(key), str(self.k8s["flannel_network_json"]))
            return "flannel-key"
        raise ValueError(f"{task.source}: '{task.name}' ({module}) is not in the fingerprint")

    def file(self, v: Variables, task: Task) -> str:
        args = task.args
        items: list[dict[str, Any]]
        if task.module == "template":
            loop = v.with_task(task).render(task.data["loop"])
            items = [dict(i) for i in loop]
        elif "src" in args and task.data.get("loop") is not None:
            return self.copies(v, task)
        elif "src" in args:
            return self.tree(v, task)
        else:
            dest = v.with_task(task).render(args["dest"])
            content = v.with_task(task).render(args["content"])
            items = [{"dest": dest, "content": content, "component": ""}]
        for item in items:
            dest = str(item["dest"])
            content = item.get("content", self.rendered.get(dest))
            if content is None:
                raise ValueError(f"{task.source}: '{task.name}': {dest} is not rendered")
            self.out.files[dest] = ExpectedFile(
                dest,
                _sha256(str(content)),
                _mode(args["mode"]),
                str(args["owner"]),
                str(args["group"]),
                str(item.get("component", "")),
            )
            if dest == v.value("prerequisites_sysctl_file"):
                self.out.sysctl = {
                    str(k): str(x) for k, x in v.value("prerequisites_sysctl").items()
                }
        return "file"

    def tree(self, v: Variables, task: Task) -> str:
        """A controller directory copied whole (`src` ends in /): each file under it lands
        under `dest` with the task's owner and mode (the certificates of kube_pki_source)."""
        args = v.with_task(task)
        source = Path(str(args.render(task.args["src"])))
        dest = str(args.render(task.args["dest"]))
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            target = f"{dest.rstrip('/')}/{path.relative_to(source)}"
            self.out.files[target] = ExpectedFile(
                target,
                hashlib.sha256(path.read_bytes()).hexdigest(),
                _mode(task.args["mode"]),
                str(task.args["owner"]),
                str(task.args["group"]),
                "",
            )
        return "file"

    def copies(self, v: Variables, task: Task) -> str:
        """Controller files copied one by one, each item naming its own owner and mode (the
        certificates role: the cluster PKI's files for this host). The PKI is made first if
        any of them is missing, as the playbook's context lookup would make it (`check` brings
        the whole PKI up to date once before reading the hosts)."""
        items = [dict(i) for i in v.with_task(task).render(task.data["loop"])]
        if self.cluster.settings.tls and not all(Path(str(i["src"])).exists() for i in items):
            pki.ensure_pki(self.cluster, facts.pki_state_dir(self.cluster))
        for item in items:
            dest = str(item["dest"])
            self.out.files[dest] = ExpectedFile(
                dest,
                hashlib.sha256(Path(str(item["src"])).read_bytes()).hexdigest(),
                _mode(item["mode"]),
                str(item["owner"]),
                str(item["group"]),
                "",
            )
        return "file"

    def directory(self, v: Variables, task: Task) -> str:
        if task.data.get("loop") is not None:
            return "file-parents"  # created only for files that are written: files cover them
        path = str(v.render(task.args["path"]))
        args = task.args
        self.out.directories[path] = ExpectedDirectory(
            path, _mode(args["mode"]), str(args["owner"]), str(args["group"])
        )
        return "directory"

    def unit(self, v: Variables, task: Task, tasks: Iterable[Task]) -> str:
        state = str(task.args.get("state", ""))
        if state == "restarted":
            # The roles restart from state: a running service whose recorded configuration
            # differs from its files on disk (service_state), whichever run wrote them. The
            # units and the files each reads come from the model, like the roles' own.
            self.out.restarts.update(
                (unit, tuple(paths))
                for unit, paths in service_state.host_unit_paths(self.cluster, self.host).items()
            )
            return "config-freshness"
        enabled = task.args.get("enabled")
        for name in _names(v, task, task.args["name"]):
            known = self.out.units.get(str(name))
            active = state == "started" or (state == "" and known is not None and known.active)
            on = bool(enabled) if enabled is not None else known is not None and known.enabled
            self.out.units[str(name)] = ExpectedUnit(str(name), active, on)
        return "unit"

    def command(self, v: Variables, task: Task) -> str:
        argv = task.args.get("argv")
        if isinstance(argv, list):
            words = [str(w) for w in argv]  # the argv form the roles use for inventory values
        else:
            words = str(task.args.get("_raw", task.args.get("cmd", ""))).split()
        if words[:1] == ["setenforce"]:
            self.out.selinux_permissive = True
            return "selinux"
        if words[:2] == ["sysctl", "-p"]:
            return "sysctl"
        if words[:1] == list(_FIREWALL_COMMANDS):
            self.out.firewall = Firewall(
                str(self.k8s["firewall_mode"]),
                tuple(v.value("prerequisites_firewall_ports")),
                str(self.k8s["flannel_network"]),
            )
            return "firewall"
        raise ValueError(f"{task.source}: '{task.name}' runs {words[:2]}: not in the fingerprint")

    def repo(self, v: Variables, task: Task) -> str:
        items = v.with_task(task).render(task.data["loop"])
        for item in items:
            values = {
                key: v.with_task(task, item=item).render(value) for key, value in task.args.items()
            }
            path = f"/etc/yum.repos.d/{values.pop('file')}.repo"
            section = str(values.pop("name"))
            flat = {
                ("name" if k == "description" else k): (
                    ("1" if val else "0") if isinstance(val, bool) else str(val)
                )
                for k, val in values.items()
            }
            self.out.repos.append(Repo(path, section, flat))
        return "yum-repo"


def expected(cluster: Cluster, host: Host, *, in_container: bool = False) -> Expected:
    """`host`'s converged state; `in_container`: kernel settings belong to the machine that
    runs the container, and the roles leave them alone (as they do)."""
    b = _Reader(cluster, host, in_container).read()
    if b.firewall is None and cluster.settings.k8s_os_family == "redhat":
        # firewall_mode=disable: only the stop-and-disable task applies.
        b.firewall = Firewall(cluster.settings.firewall_mode, (), "")
    return Expected(
        host=host.name,
        files=tuple(b.files.values()),
        directories=tuple(b.directories.values()),
        packages=tuple(b.packages),
        package_query=b.package_query,
        units=tuple(b.units.values()),
        sysctl=b.sysctl,
        modules=b.modules,
        hosts_lines=b.hosts_lines,
        hosts_markers=b.hosts_markers,
        hostname=b.hostname,
        selinux_permissive=b.selinux_permissive,
        repos=tuple(b.repos),
        firewall=b.firewall,
        restarts={u: p for u, p in b.restarts.items() if p and u in b.units},
        flannel_key=b.flannel_key,
        coverage=tuple(b.coverage),
    )
