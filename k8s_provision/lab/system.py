"""Processes, cgroups, mounts, files, locks and progress: the machine-level helpers the lab is
built from. Everything is stopped by PID with its start time, never by name."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from k8s_provision.errors import OperationFailed
from k8s_provision.files import atomic_write
from k8s_provision.lab.config import LOCK_DIR, HostRunState, HostState, LabConfig

_LOCK_TIMEOUT = 600.0


STOP_TIMEOUT = 20.0


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie. PID and
    start time together identify a process: a PID alone may be reused after a reboot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(host: HostState) -> bool:
    return host.pid is not None and process_start_time(host.pid) == host.start_time


def run_state(host: HostState) -> HostRunState:
    if host.pid is None:
        return "off"
    return "running" if alive(host) else "dead"


def terminate(pid: int, start_time: int) -> None:
    """SIGTERM (nspawn powers the container off), wait, then SIGKILL. Only if `pid` is still
    the process we started."""
    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        if process_start_time(pid) != start_time:
            reap(pid)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reap(pid)
            if process_start_time(pid) != start_time:
                return
            time.sleep(0.05)
    raise OperationFailed(f"process {pid} survived SIGKILL")


def reap(pid: int) -> None:
    """Collect the exit status when the container is our own child (else it would linger as a
    zombie in a long-lived caller such as a test session)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def kill_cgroup(cgroup: Path) -> None:
    """SIGKILL whatever is still in a lab host's cgroup: everything there was started by it."""
    deadline = time.monotonic() + 5.0
    while True:
        pids = _cgroup_pids(cgroup)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise OperationFailed(f"processes {pids} in {cgroup} survived SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            reap(pid)
        time.sleep(0.05)


def _cgroup_pids(cgroup: Path) -> list[int]:
    # os.walk skips directories that vanish under it: a dying host's systemd removes its own
    # cgroups while we look (rglob raised FileNotFoundError there).
    pids: list[int] = []
    for root, _dirs, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            pids += [int(p) for p in _read_lines(Path(root) / "cgroup.procs")]
    return pids


def remove_cgroup(cgroup: Path) -> None:
    if not cgroup.exists():
        return
    # cgroupfs removes a cgroup with rmdir once its children are gone: deepest first.
    for root, _dirs, _files in os.walk(cgroup, topdown=False):
        with contextlib.suppress(FileNotFoundError):
            Path(root).rmdir()


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        field = line.split()[1]
        # /proc/mounts escapes space, tab, newline and backslash as octal.
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
    return points


def is_mounted(path: Path) -> bool:
    return str(path) in mount_points()


def umount(path: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    # Still busy after 2 s: detach it so it disappears now and is freed when unused.
    run(["umount", "--lazy", str(path)], f"unmount {path}")


def remove_tree(path: Path) -> None:
    """rm -r that first unmounts whatever is mounted below `path`, and refuses to descend
    into a mount it could not remove (never delete through a mount into another filesystem)."""
    prefix = str(path).rstrip("/") + "/"
    for point in sorted((p for p in mount_points() if p.startswith(prefix)), reverse=True):
        umount(Path(point))
    remaining = [p for p in mount_points() if p.startswith(prefix)]
    if remaining:
        raise OperationFailed(f"cannot remove {path}: still mounted below it", details=remaining)
    shutil.rmtree(path)


def write_file(path: Path, text: str, *, mode: int = 0o644, only_if_changed: bool = False) -> None:
    """Write atomically (temp file + rename): a reader never sees half a file."""
    if only_if_changed and path.exists() and path.read_text() == text:
        return
    atomic_write(path, text.encode(), mode=mode)


def tail(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except FileNotFoundError:
        return []


def run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OperationFailed(
            f"{what} failed: `{shlex.join(argv)}` exited {result.returncode}",
            details=result.stderr.strip().splitlines()[-10:],
        )
    return result


@contextlib.contextmanager
def lab_lock(cfg: LabConfig, progress: Progress) -> Iterator[None]:
    """One lab command at a time per lab name (netns names derive from it)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with flock(LOCK_DIR / f"lab-{cfg.name}.lock", _LOCK_TIMEOUT, progress, f"lab {cfg.name}"):
        yield


@contextlib.contextmanager
def flock(path: Path, timeout: float, progress: Progress, what: str) -> Iterator[None]:
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"{what} is still locked by another process after {timeout:.0f} s ({path})"
                )
            if not waiting:
                progress.note(f"waiting for another k8s-provision process using {what} ({path})")
                waiting = True
            time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Progress:
    """Progress for the operator on stderr: a spinner on a terminal, plain lines otherwise
    (CI logs, tests)."""

    def __init__(self) -> None:
        self._console = Console(stderr=True, highlight=False)
        self._status: Status | None = None
        self._title = ""

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        if self._console.is_terminal:
            with self._console.status(escape(title)) as status:
                self._status, self._title = status, title
                try:
                    yield
                finally:
                    self._status = None
            elapsed = time.monotonic() - started
            self._console.print(f"[green]✓[/green] {escape(title)} [dim]({elapsed:.1f} s)[/dim]")
        else:
            self._plain(f"{title} ...")
            yield
            self._plain(f"{title}: done in {time.monotonic() - started:.1f} s")

    def detail(self, text: str, *, milestone: bool = True) -> None:
        """Progress inside a step: always on a terminal's spinner, only milestones as lines."""
        if self._status is not None:
            self._status.update(escape(f"{self._title}: {text}"))
        elif milestone and not self._console.is_terminal:
            self._plain(f"  {text}")

    def note(self, text: str) -> None:
        if self._console.is_terminal:
            self._console.print(escape(text))
        else:
            self._plain(text)

    @staticmethod
    def _plain(text: str) -> None:
        print(f"lab: {text}", file=sys.stderr, flush=True)
