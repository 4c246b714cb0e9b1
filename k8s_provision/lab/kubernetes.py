"""The Kubernetes server binaries for lab hosts, built from Debian's `kubernetes` source package.

No registry reachable here serves Kubernetes server binaries, but Debian's source package (the
one behind kubernetes-client) holds the whole tree with `vendor/` and builds with Debian's
golang-go. It is fetched with `apt-get source` from the archive this machine already uses
(a deb-src entry is added for it when missing), built once with the tree's own `make WHAT=...`,
and the binaries are cached under `<cache dir>/kubernetes/<source version>/bin/`, beside the base
rootfs. `lab down` never touches the cache.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import TextIO

from k8s_provision.errors import OperationFailed, UsageError
from k8s_provision.lab import images
from k8s_provision.lab.rootfs import SUITE, apt_source
from k8s_provision.lab.system import Progress, flock, remove_tree, tail, write_file

SOURCE_PACKAGE = "kubernetes"
BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
# Debian package → the tool the build needs from it (for the fix-it message and CI).
BUILD_TOOLS = {
    "golang-go": "go",
    "dpkg-dev": "dpkg-source",
    "rsync": "rsync",
    "jq": "jq",
    "make": "make",
}
# What the binaries report (Debian's 1.20.5+really1.20.2 is upstream 1.20.2).
KUBE_VERSION = "1.20.2"
# Built in the rootfs and imported into containerd's k8s.io namespace: nothing can be pulled.
PAUSE_IMAGE = "k8s-provision.local/pause:1.0"
# The kubelet talks CRI to the lab's containerd (1.20's built-in runtime is dockershim).
KUBELET_RUNTIME_ARGS = (
    "--container-runtime=remote",
    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
)
# The image archive beside the binaries, bound into hosts with its directory.
PAUSE_ARCHIVE = "images/pause.tar"
SOURCES_FILE = Path("/etc/apt/sources.list.d/k8s-provision-src.sources")

_BUILD_LOCK_TIMEOUT = 3 * 3600.0
# The tree's build prints one line per group of Go targets it starts: those are the milestones.
_MILESTONE = re.compile(r"^\+\+\+ \[[^]]*\] (.*)")


def kubernetes_dir(cache_dir: Path) -> Path:
    return cache_dir / "kubernetes"


def binaries_dir(cache_dir: Path, version: str) -> Path:
    return kubernetes_dir(cache_dir) / version / "bin"


def cached_versions(cache_dir: Path) -> list[str]:
    """Source versions whose binaries are complete in the cache."""
    root = kubernetes_dir(cache_dir)
    if not root.is_dir():
        return []
    return sorted(
        d.name for d in root.iterdir() if not d.name.startswith(".") and _complete(d / "bin")
    )


def deb_src_stanza(uri: str, keyring: Path | None, suite: str = SUITE) -> str:
    """The deb-src entry for the archive the machine's apt already uses (same URI and key)."""
    lines = ["Types: deb-src", f"URIs: {uri}", f"Suites: {suite}", "Components: main"]
    if keyring is not None:
        lines.append(f"Signed-By: {keyring}")
    return "\n".join(lines) + "\n"


def source_version() -> str | None:
    """The version `apt-get source` would fetch (from the .dsc it names), or None when apt has
    no deb-src entry that serves the package."""
    result = _run_plain(["apt-get", "source", "--print-uris", SOURCE_PACKAGE])
    if result.returncode != 0:
        return None
    found = re.search(rf"^'[^']*' {SOURCE_PACKAGE}_(\S+)\.dsc ", result.stdout, re.M)
    return found.group(1) if found else None


def missing_build_tools() -> list[str]:
    """Debian packages the build needs that are not installed (by their tool on PATH)."""
    return sorted(pkg for pkg, tool in BUILD_TOOLS.items() if shutil.which(tool) is None)


def ensure_binaries(cache_dir: Path, progress: Progress) -> Path:
    """The directory of the cached server binaries, built first when the cache has none for the
    source version apt offers. Concurrent callers wait on a lock; one builds."""
    if os.geteuid() != 0:
        raise UsageError("building the Kubernetes binaries needs root (apt-get): use sudo")
    missing = missing_build_tools()
    if missing:
        raise UsageError(
            "the Kubernetes build needs tools that are not installed",
            details=[f"run `apt-get install -y {' '.join(missing)}`"],
        )
    version = source_version()
    if version is None:
        _add_deb_src(progress)
        version = source_version()
    if version is None:
        raise OperationFailed(
            f"apt knows no source package {SOURCE_PACKAGE!r} even after adding {SOURCES_FILE}",
            details=["check `apt-cache showsrc kubernetes` and the deb-src entries"],
        )
    final = binaries_dir(cache_dir, version)
    if _complete(final):
        return final
    root = kubernetes_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    with flock(root / f"{version}.lock", _BUILD_LOCK_TIMEOUT, progress, "Kubernetes build"):
        if not all((final / b).is_file() for b in BINARIES):
            _build(root, version, progress)
        if not (final / PAUSE_ARCHIVE).is_file():
            _build_pause_image(final, root, progress)
    return final


def _complete(bin_dir: Path) -> bool:
    return all((bin_dir / b).is_file() for b in (*BINARIES, PAUSE_ARCHIVE))


def _build_pause_image(bin_dir: Path, root: Path, progress: Progress) -> None:
    """The lab's pause image (pod sandbox and test workload), from pause/pause.go."""
    work = root / f".pause-{os.getpid()}"
    work.mkdir(exist_ok=True)
    try:
        with progress.step(f"building the pause image {PAUSE_IMAGE}"):
            binary = images.build_pause(work / "pause", work)
            archive = images.image_archive(binary.read_bytes(), PAUSE_IMAGE)
            (bin_dir / "images").mkdir(exist_ok=True)
            staged = work / "pause.tar"
            staged.write_bytes(archive)
            staged.chmod(0o644)
            staged.replace(bin_dir / PAUSE_ARCHIVE)
    finally:
        remove_tree(work)


def build_info(cache_dir: Path, version: str) -> dict[str, object] | None:
    path = kubernetes_dir(cache_dir) / f"{version}.json"
    try:
        info: dict[str, object] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return info


def _build(root: Path, version: str, progress: Progress) -> None:
    for stale in root.glob(f".build-{version}-*"):
        remove_tree(stale)
    work = root / f".build-{version}-{os.getpid()}"
    work.mkdir()
    log = root / f"{version}.build.log"
    started = time.monotonic()
    title = f"building Kubernetes {version} from source ({', '.join(BINARIES)})"
    with progress.step(title):
        progress.note(f"a cold build took 17 min on 2 busy cores; log: {log}")
        with log.open("w") as handle:
            _logged(["apt-get", "source", f"{SOURCE_PACKAGE}={version}"], work, handle, progress)
            tree = next(d for d in work.iterdir() if d.is_dir())
            link = tree / ".go/src/k8s.io/kubernetes"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("../../..")
            env = {
                **os.environ,
                # Debian's rules build the tree from its own GOPATH, statically.
                "GOPATH": str(tree / ".go"),
                "CGO_ENABLED": "0",
                "GOCACHE": str(work / "gocache"),
                "HOME": str(work),
            }
            what = " ".join(f"cmd/{b}" for b in BINARIES)
            _logged(["make", f"WHAT={what}"], tree, handle, progress, env=env)
        out = tree / "_output/local/bin/linux/amd64"
        staged = work / "bin"
        staged.mkdir()
        for binary in BINARIES:
            shutil.copy2(out / binary, staged / binary)
        seconds = round(time.monotonic() - started)
        final = binaries_dir(root.parent, version)
        if final.parent.exists():
            remove_tree(final.parent)
        final.parent.mkdir()
        staged.rename(final)
        go = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
        info = {"version": version, "build_seconds": seconds, "go": go.stdout.strip()}
        write_file(root / f"{version}.json", json.dumps(info, indent=2) + "\n")
        remove_tree(work)
        progress.note(f"Kubernetes {version} built in {seconds // 60} min {seconds % 60} s")


def _logged(
    argv: list[str],
    cwd: Path,
    log: TextIO,
    progress: Progress,
    env: dict[str, str] | None = None,
) -> None:
    """Run a build command with its output in the log and its milestones as progress."""
    log.write(f"$ {shlex.join(argv)}\n")
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        log.flush()  # `tail -f` on the log follows a build that takes minutes
        if (milestone := _MILESTONE.match(line)) is not None:
            progress.detail(milestone.group(1).strip().rstrip(":"))
        elif line.startswith("    ") and line.strip():
            progress.detail(line.strip())
    log.flush()
    if proc.wait() != 0:
        raise OperationFailed(
            f"building Kubernetes failed: `{shlex.join(argv)}` exited {proc.returncode}",
            details=[*tail(Path(log.name)), f"full log: {log.name}"],
        )


def _add_deb_src(progress: Progress) -> None:
    source = apt_source()
    with progress.step(f"adding a deb-src entry for {SOURCE_PACKAGE} ({SOURCES_FILE})"):
        write_file(SOURCES_FILE, deb_src_stanza(source.uri, source.keyring))
        result = _run_plain(["apt-get", "update"])
        if result.returncode != 0:
            raise OperationFailed(
                f"`apt-get update` exited {result.returncode} after adding {SOURCES_FILE}",
                details=result.stderr.strip().splitlines()[-10:],
            )


def _run_plain(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
