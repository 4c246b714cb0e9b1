"""The cached base rootfs every lab host boots from: a debootstrap of Debian with every package
the hosts need (they have no registry access), made generic, keyed by its recipe."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.lab.system import Progress, flock, remove_tree, run, write_file

SUITE = "bookworm"


# Everything the lab hosts need, installed at build time: lab hosts have no registry access.
PACKAGES = (
    # containerd (CRI) runs the kubelets' pods; the CNI bridge/host-local plugins wire them.
    "containerd",
    "containernetworking-plugins",
    "curl",
    "dbus",
    "etcd-client",
    "etcd-server",
    "iproute2",
    "iptables",
    "iputils-ping",
    "kmod",
    "kubernetes-client",
    "less",
    "netcat-openbsd",
    "openssh-server",
    "procps",
    "python3",
    "python3-apt",  # without it Ansible's apt module tries to install it from the network
    "runc",
    "sudo",
    "systemd",
    "systemd-sysv",
)


# Bump when `_customize_base` changes what the image contains: it is part of the cache key.
RECIPE_VERSION = 2


_BUILD_LOCK_TIMEOUT = 1800.0


@dataclass(frozen=True)
class AptSource:
    uri: str
    keyring: Path | None


def recipe_key(
    arch: str,
    packages: Sequence[str] = PACKAGES,
    suite: str = SUITE,
    version: int = RECIPE_VERSION,
) -> str:
    """Cache key of the base rootfs: changes exactly when what the image contains changes."""
    recipe = {
        "arch": arch,
        "packages": sorted(set(packages)),
        "suite": suite,
        "variant": "minbase",
        "version": version,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def apt_source(
    suite: str = SUITE,
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
    sources_list: Path = Path("/etc/apt/sources.list"),
) -> AptSource:
    """The Debian mirror this machine's apt already uses (deb822 `.sources` files first, then
    one-line `sources.list`): the lab never names a host of its own."""
    override = os.environ.get("K8S_PROVISION_LAB_MIRROR")
    if override:
        return AptSource(uri=override, keyring=None)
    candidates: list[tuple[list[str], AptSource]] = []
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in _deb822_stanzas(path.read_text(errors="replace")):
            enabled = stanza.get("enabled", "yes").lower() != "no"
            if not enabled or "deb" not in stanza.get("types", "").split():
                continue
            signed_by = stanza.get("signed-by", "")
            keyring = Path(signed_by) if signed_by.startswith("/") else None
            for uri in stanza.get("uris", "").split():
                candidates.append((stanza.get("suites", "").split(), AptSource(uri, keyring)))
    if sources_list.is_file():
        for line in sources_list.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                candidates.append(([words[2]], AptSource(words[1], None)))
    for suites, source in candidates:
        if suite in suites:
            return source
    # Another release's main archive also serves this suite; security and updates do not.
    for suites, source in candidates:
        if "security" not in source.uri and any("-" not in s for s in suites):
            return source
    raise UsageError(
        f"no Debian mirror found in {sources_dir}/*.sources or {sources_list}",
        details=["set K8S_PROVISION_LAB_MIRROR to a Debian mirror URL that serves " + suite],
    )


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            last = key.strip().lower()
            current[last] = value.strip()
    return stanzas


def ensure_base(cache_dir: Path, progress: Progress) -> Path:
    """The cached base rootfs for the current recipe, built when missing. Concurrent builders
    wait on a lock; a build happens in a temporary directory renamed into place when done."""
    key = recipe_key(_dpkg_arch())
    rootfs_dir = cache_dir / "rootfs"
    final = rootfs_dir / key
    if final.is_dir():
        return final
    rootfs_dir.mkdir(parents=True, exist_ok=True)
    with flock(rootfs_dir / f"{key}.lock", _BUILD_LOCK_TIMEOUT, progress, "rootfs build"):
        if final.is_dir():
            return final
        for stale in rootfs_dir.glob(f".build-{key}-*"):
            remove_tree(stale)
        source = apt_source()
        building = rootfs_dir / f".build-{key}-{os.getpid()}"
        log = rootfs_dir / f"{key}.build.log"
        started = time.monotonic()
        with progress.step(f"building base rootfs {key} from {source.uri} (about a minute)"):
            _debootstrap(building, source, log, progress)
            _customize_base(building, key)
        seconds = time.monotonic() - started
        size = _tree_size(building)
        building.rename(final)
        meta = {
            "key": key,
            "suite": SUITE,
            "packages": list(PACKAGES),
            "recipe_version": RECIPE_VERSION,
            "mirror": source.uri,
            "build_seconds": round(seconds, 1),
            "size_bytes": size,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_file(rootfs_dir / f"{key}.json", json.dumps(meta, indent=2) + "\n")
        progress.note(f"base rootfs {key}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
        return final


def base_info(cache_dir: Path) -> dict[str, object] | None:
    """Build time and size recorded for the current recipe's rootfs, if it was built."""
    meta = cache_dir / "rootfs" / f"{recipe_key(_dpkg_arch())}.json"
    if not meta.exists():
        return None
    data: dict[str, object] = json.loads(meta.read_text())
    return data


def _debootstrap(target: Path, source: AptSource, log: Path, progress: Progress) -> None:
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        *([f"--keyring={source.keyring}"] if source.keyring and source.keyring.exists() else []),
        SUITE,
        str(target),
        source.uri,
    ]
    phase = ""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            text = line.strip()
            if not text.startswith("I: "):
                continue
            # "I: Retrieving libc6 2.36-9" and "I: Validating libc6 ..." alternate per package:
            # both are the download phase. A log gets one line per phase, a terminal them all.
            verb = text.split()[1] if len(text.split()) > 1 else ""
            verb = "Retrieving" if verb == "Validating" else verb
            progress.detail(text, milestone=verb != phase)
            phase = verb
        code = proc.wait()
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise OperationFailed(
            f"debootstrap exited {code} (full log: {log})",
            details=[*tail, f"command: {shlex.join(argv)}"],
        )


def _customize_base(root: Path, key: str) -> None:
    """Make the image generic: each host gets its own identity and keys when it is created."""
    run(["chroot", str(root), "apt-get", "clean"], "apt-get clean in the new rootfs")
    for host_key in (root / "etc/ssh").glob("ssh_host_*"):
        host_key.unlink()
    write_file(root / "etc/machine-id", "")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
    write_file(root / "etc/hostname", "localhost\n")
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    write_file(resolv, "# Lab hosts have no DNS: lab names resolve through /etc/hosts.\n")
    # Debian enables etcd at install; a first boot would bootstrap a one-member cluster whose
    # data dir then overrides ETCD_INITIAL_CLUSTER. The playbooks start it when configured.
    run(["chroot", str(root), "systemctl", "disable", "--quiet", "etcd.service"], "disable etcd")
    # Only hosts of a lab with Kubernetes run containerd (they enable it when installed).
    run(
        ["chroot", str(root), "systemctl", "disable", "--quiet", "containerd.service"],
        "disable containerd",
    )
    shutil.rmtree(root / "var/lib/etcd/default", ignore_errors=True)
    write_file(root / "etc/k8s-provision-lab", f"base rootfs recipe {key}\n")


def _dpkg_arch() -> str:
    return run(["dpkg", "--print-architecture"], "dpkg --print-architecture").stdout.strip()


def _tree_size(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
