"""Render every configuration file a host receives, from the collection's `templates/`.

The Ansible roles render the same templates with the same `k8s` context (the collection's
k8s_provision.cluster.context lookup calls `host_context`), so the files written here are
byte-identical to those on the hosts."""

from __future__ import annotations

import functools
import json
import os
import posixpath
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from k8s_provision import facts, pki
from k8s_provision.errors import UsageError
from k8s_provision.model import Cluster, Host, Settings
from k8s_provision.paths import templates_dir
from k8s_provision.ssh_args import bastion_ssh_args

# Where each family keeps the files whose location differs; everything else is shared.
FAMILY_PATHS: dict[str, dict[str, str]] = {
    "redhat": {
        "etcd_config_path": "/etc/etcd/etcd.conf",
        "flanneld_config_path": "/etc/sysconfig/flanneld",
        "etcd_default_data_dir": "/var/lib/etcd/default.etcd",
    },
    "debian": {
        "etcd_config_path": "/etc/default/etcd",
        "flanneld_config_path": "/etc/default/flanneld",
        "etcd_default_data_dir": "/var/lib/etcd/default",
    },
}

# The flannel network JSON is written on the first etcd member, the host that stores it in etcd
# under <flannel_etcd_prefix>/config.
FLANNEL_NETWORK_PATH = "/etc/k8s-provision/flannel-network.json"

# The API server's ABAC policy (k8s_security tls before Kubernetes 1.20; docs/security.md).
ABAC_POLICY_PATH = "/etc/kubernetes/abac-policy.jsonl"
# Where flanneld finds the etcd CA and its etcd client certificate (k8s_security tls).
_FLANNEL_TLS_OPTIONS = (
    f"-etcd-cafile={pki.HOST_PKI_DIR}/etcd-ca.crt",
    f"-etcd-certfile={pki.HOST_PKI_DIR}/flannel-etcd-client.crt",
    f"-etcd-keyfile={pki.HOST_PKI_DIR}/flannel-etcd-client.key",
)

# Every path render can write for a host, whatever the family: an existing OUT/<host> is
# replaced only when it holds nothing else, so render never deletes what it did not write.
RENDERED_PATHS = frozenset(
    [
        *(p for family in FAMILY_PATHS.values() for k, p in family.items() if k.endswith("_path")),
        FLANNEL_NETWORK_PATH,
        ABAC_POLICY_PATH,
        *(
            f"/etc/kubernetes/{name}"
            for name in (
                "config",
                "apiserver",
                "controller-manager",
                "scheduler",
                "kubelet",
                "proxy",
            )
        ),
    ]
)
_RENDERED_DIRS = frozenset(
    str(parent) for path in RENDERED_PATHS for parent in PurePosixPath(path).parents
) - {"/"}


@dataclass(frozen=True)
class PlannedFile:
    template: str
    dest: str
    component: str


def planned_files(cluster: Cluster, host: Host) -> list[PlannedFile]:
    """The files `host` receives, in start order of their components."""
    paths = FAMILY_PATHS[cluster.settings.k8s_os_family]
    files: list[PlannedFile] = []
    if host.is_etcd:
        files.append(PlannedFile("etcd.conf.j2", paths["etcd_config_path"], "etcd"))
    if host.name == cluster.etcd[0]:
        files.append(
            PlannedFile("flannel-network.json.j2", FLANNEL_NETWORK_PATH, "flannel-network")
        )
    if host.runs_flannel:
        files.append(PlannedFile("flanneld.j2", paths["flanneld_config_path"], "flanneld"))
        files.append(PlannedFile("config.j2", "/etc/kubernetes/config", "kubernetes"))
    if host.is_master:
        files += [
            PlannedFile("apiserver.j2", "/etc/kubernetes/apiserver", "kube-apiserver"),
            PlannedFile(
                "controller-manager.j2",
                "/etc/kubernetes/controller-manager",
                "kube-controller-manager",
            ),
            PlannedFile("scheduler.j2", "/etc/kubernetes/scheduler", "kube-scheduler"),
        ]
        if cluster.settings.tls and cluster.settings.kube_minor < 20:
            files.append(PlannedFile("abac-policy.jsonl.j2", ABAC_POLICY_PATH, "kube-apiserver"))
    if host.is_node:
        files += [
            PlannedFile("kubelet.j2", "/etc/kubernetes/kubelet", "kubelet"),
            PlannedFile("proxy.j2", "/etc/kubernetes/proxy", "kube-proxy"),
        ]
    return files


def flannel_network_config(settings: Settings) -> dict[str, Any]:
    return {"Network": settings.flannel_network, "Backend": {"Type": settings.flannel_backend}}


def _cluster_context(cluster: Cluster) -> dict[str, Any]:
    s = cluster.settings
    paths = FAMILY_PATHS[s.k8s_os_family]
    context: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(s, f.name)
        # Environment files want lower-case booleans; Jinja would print True/False.
        context[f.name] = ("true" if value else "false") if isinstance(value, bool) else value
    members = [cluster.host(name) for name in cluster.etcd]
    master = cluster.master
    kubelet_args = []
    if s.kube_cluster_dns:
        kubelet_args += [
            f"--cluster-dns={s.kube_cluster_dns}",
            f"--cluster-domain={s.kube_cluster_domain}",
        ]
    if s.kubelet_extra_args:
        kubelet_args.append(s.kubelet_extra_args)
    plugins = s.kube_admission_control.split(",")
    if s.tls and "ServiceAccount" not in plugins:
        # The PKI holds the service-account key pair, so the admission plugin the classic
        # default leaves out can run. 1.5 applies the list in order and ResourceQuota must
        # come last: ServiceAccount goes before it.
        at = plugins.index("ResourceQuota") if "ResourceQuota" in plugins else len(plugins)
        plugins.insert(at, "ServiceAccount")
    admission = ",".join(plugins)
    context.update(
        kube_admission_plugins=admission,
        etcd_pki_dir=pki.ETCD_PKI_DIR,
        abac_policy_path=ABAC_POLICY_PATH,
        etcd_config_path=paths["etcd_config_path"],
        flanneld_config_path=paths["flanneld_config_path"],
        flannel_network_path=FLANNEL_NETWORK_PATH,
        etcd_data_dir=s.etcd_data_dir or paths["etcd_default_data_dir"],
        etcd_members=[
            {
                "name": h.name,
                "member_name": h.etcd_name,
                "ip": h.ip,
                "client_url": facts.etcd_client_url(cluster, h),
                "peer_url": facts.etcd_peer_url(cluster, h),
                "plaintext": facts.etcd_plaintext_urls(cluster, h),
            }
            for h in members
        ],
        etcd_initial_cluster=",".join(
            f"{h.etcd_name}={facts.etcd_peer_url(cluster, h)}" for h in members
        ),
        etcd_endpoints=",".join(facts.etcd_client_url(cluster, h) for h in members),
        etcd_first_member=cluster.etcd[0],
        master={"name": master.name, "ip": master.ip},
        kube_master_url=facts.api_url(cluster),
        kubelet_args=" ".join(kubelet_args),
        flannel_network_json=json.dumps(flannel_network_config(s), separators=(",", ":")),
        cluster_hosts=[{"name": h.name, "ip": h.ip} for h in cluster.hosts],
        masters=list(cluster.masters),
        nodes=list(cluster.nodes),
        etcd_hosts=list(cluster.etcd),
    )
    return context


def host_context(
    cluster: Cluster, name: str, cluster_context: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `k8s` variable the templates read for host `name`: cluster settings, derived values,
    the host's own facts and the list of files it receives. `cluster_context` is the shared
    part, computed once per cluster when rendering many hosts."""
    host = cluster.host(name)
    options = list(_FLANNEL_TLS_OPTIONS) if cluster.settings.tls else []
    if host.flannel_iface:
        options.append(f"-iface={host.flannel_iface}")
    if cluster.settings.flannel_extra_options:
        options.append(cluster.settings.flannel_extra_options)
    context = dict(cluster_context or _cluster_context(cluster))
    context["host"] = {
        "name": host.name,
        "ip": host.ip,
        "kube_node_name": host.kube_node_name,
        "etcd_name": host.etcd_name,
        "flannel_iface": host.flannel_iface,
        "flannel_options": " ".join(options),
        "is_master": host.is_master,
        "is_node": host.is_node,
        "is_etcd": host.is_etcd,
        "runs_flannel": host.runs_flannel,
        "etcd_initial_cluster_state": "new",
        # What the first play sets as ansible_ssh_extra_args to reach the host via the bastion.
        "bastion_ssh_args": bastion_ssh_args(host.connection.via) if host.connection.via else "",
    }
    context["files"] = [asdict(f) for f in planned_files(cluster, host)]
    return context


@functools.cache
def template_environment() -> jinja2.Environment:
    """One per process: it keeps the compiled templates (the fast path renders every host,
    twice for a container host). Ansible's template action's settings: trim_blocks on,
    lstrip_blocks off, trailing newline kept."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 -- configuration files, not HTML
    )


def render_host(
    cluster: Cluster,
    name: str,
    env: jinja2.Environment | None = None,
    cluster_context: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Map each destination path on host `name` to the file's content."""
    env = env or template_environment()
    context = host_context(cluster, name, cluster_context)
    return {
        f["dest"]: env.get_template(f["template"]).render(k8s=context) for f in context["files"]
    }


def render_cluster(cluster: Cluster) -> dict[str, dict[str, str]]:
    env = template_environment()
    shared = _cluster_context(cluster)
    return {host.name: render_host(cluster, host.name, env, shared) for host in cluster.hosts}


def _written_by_render(host_dir: Path) -> bool:
    """Whether `host_dir` holds only what render writes (so replacing it loses nothing).
    scandir's entries carry their type, so checking 1000 host directories costs no stat."""
    if host_dir.is_symlink() or not host_dir.is_dir():
        return False
    pending = [(host_dir, "")]
    while pending:
        directory, rel = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}"
                if entry.is_dir(follow_symlinks=False) and path in _RENDERED_DIRS:
                    pending.append((Path(entry.path), path))
                elif not (entry.is_file(follow_symlinks=False) and path in RENDERED_PATHS):
                    return False
    return True


def _check_targets(rendered: dict[str, dict[str, str]], out_dir: Path) -> None:
    """Every target must resolve inside OUT/<host>; an existing host directory is replaced
    only when render wrote it."""
    for host, files in rendered.items():
        final = out_dir / host
        if host in ("", ".", "..") or "/" in host or "\0" in host or final.parent != out_dir:
            raise UsageError(f"host {host!r}: not usable as a directory name under {out_dir}")
        for dest in files:
            if not dest.startswith("/") or posixpath.normpath(dest) != dest:
                raise UsageError(f"host {host}: {dest!r} is not a normalised absolute path")
        if (final.exists() or final.is_symlink()) and not _written_by_render(final):
            raise UsageError(
                f"{final}: exists and holds files render did not write; move it away or choose"
                " another -o"
            )


def write_rendered(rendered: dict[str, dict[str, str]], out_dir: Path) -> list[Path]:
    """Write OUT/<host>/<absolute path> for every file. Everything is written to a temporary
    directory beside OUT first and moved into place only when complete, so a failure leaves
    OUT as it was. Nothing outside OUT is written, and nothing render did not write is
    deleted."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    _check_targets(rendered, out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as err:
        raise UsageError(f"{out_dir}: cannot write there: {err.strerror}") from None
    written: list[Path] = []
    made: set[Path] = set()
    try:
        for host, files in rendered.items():
            for dest, content in files.items():
                target = staging / host / dest.lstrip("/")
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                with target.open("wb") as handle:
                    handle.write(content.encode("utf-8"))
                written.append(out_dir / host / dest.lstrip("/"))
        out_dir.mkdir(exist_ok=True)
        for host in rendered:
            final = out_dir / host
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging / host, final)
    except OSError as err:
        raise UsageError(f"{out_dir}: cannot write there: {err.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
