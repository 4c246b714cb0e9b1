"""Run ansible-playbook as a subprocess with an argument list (as molecule does), stream its
events to a progress callback, keep the full output in a log file, and turn Ansible's exit codes
into errors that name host, task and message."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from k8s_provision import ssh_args
from k8s_provision.errors import Interrupted, OperationFailed, ProvisionError, UsageError
from k8s_provision.paths import COLLECTION, ansible_cfg, playbooks_dir, share_dir
from k8s_provision.report import counted

Event = dict[str, Any]
EventHandler = Callable[[Event], None]


@dataclass(frozen=True)
class RunOptions:
    """How every verb runs its playbook, as the operator chose on the command line."""

    forks: int | None = None
    verbosity: int = 0
    log_dir: Path | None = None
    become_password: str | None = field(default=None, repr=False)
    on_event: EventHandler | None = None


@dataclass(frozen=True)
class TaskFailure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass
class RunResult:
    playbook: str
    exit_code: int
    log_path: Path
    command: list[str]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())


def default_log_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "k8s-provision" / "logs"


def ansible_bin(name: str) -> str:
    """The ansible executable next to this Python, so the playbooks import this k8s_provision."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def playbook_fqcn(name: str) -> str:
    """The collection playbook `name` (site.yml) by the name ansible-playbook resolves it with
    from any directory (k8s_provision.cluster.site), once its file is known to be installed."""
    path = playbooks_dir() / name
    if not path.is_file():
        raise UsageError(f"{path}: playbook not found; the installation is incomplete")
    return f"{COLLECTION}.{path.stem}"


def _file_name(playbook: str | Path) -> str:
    """site.yml for a path or for k8s_provision.cluster.site: what logs and messages call it."""
    return playbook.name if isinstance(playbook, Path) else f"{playbook.rpartition('.')[2]}.yml"


def build_command(
    playbook: str | Path,
    inventory: Path,
    *,
    limit: str | None = None,
    forks: int | None = None,
    verbosity: int = 0,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
) -> list[str]:
    command = [ansible_bin("ansible-playbook"), "-i", str(inventory)]
    if limit:
        command += ["--limit", limit]
    if forks:
        command += ["--forks", str(forks)]
    if verbosity:
        command.append("-" + "v" * min(verbosity, 4))
    if extra_vars:
        command += ["--extra-vars", json.dumps(dict(extra_vars))]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    command.append(str(playbook))
    return command


def _environment(events_fd: int) -> dict[str, str]:
    # The become password reaches ansible only through its stdin pipe (`--become-password-file
    # -`): never in argv, in a file, or in the environment its children inherit.
    env = {k: v for k, v in os.environ.items() if k != "K8SP_BECOME_PASSWORD"}
    env.setdefault("ANSIBLE_CONFIG", str(ansible_cfg()))
    # Host keys are checked whatever the operator's environment or ansible.cfg say.
    env.update(ssh_args.ansible_host_key_env(env))
    env["ANSIBLE_CALLBACKS_ENABLED"] = f"{COLLECTION}.events"
    env["K8SP_EVENTS_FD"] = str(events_fd)
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _EventReader:
    """JSON lines from the callback's pipe. A pipe rather than a file: nothing is left on disk
    by a run that is killed, and the reader wakes up as soon as an event arrives."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial = b""
        os.set_blocking(fd, False)

    def read(self, timeout: float) -> list[Event]:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        chunks = []
        while ready:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        lines = (self.partial + b"".join(chunks)).split(b"\n")
        self.partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def _die_with_parent() -> None:
    """In the child before exec: its own session, so a terminal's Ctrl-C reaches only the CLI,
    which then stops the whole group; and SIGTERM from the kernel when the CLI dies, even by
    SIGKILL, so ansible-playbook is never left running orphaned."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# prctl(2) option number (linux/prctl.h).
PR_SET_PDEATHSIG = 1
# How long ansible-playbook may take to stop its workers after SIGINT/SIGTERM.
STOP_GRACE_SECONDS = 10.0


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop ansible-playbook and every worker and ssh it started (its whole process group):
    SIGINT so it ends its tasks like Ctrl-C does, SIGKILL when it does not within the grace."""
    if process.poll() is not None:
        # A finished run has reaped its workers; its ssh ControlPersist masters stay for the
        # next run.
        return
    _kill_group(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    _kill_group(process.pid, signal.SIGKILL)
    process.wait()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def run_playbook(
    playbook: str | Path,
    inventory: Path,
    *,
    log_dir: Path | None = None,
    on_event: EventHandler | None = None,
    become_password: str | None = None,
    **options: Any,
) -> RunResult:
    """Run one playbook (a collection playbook's name or a file) to completion. Never raises for
    a failed run: see `raise_for_failure`. On any way out (an exception, Ctrl-C, SIGTERM or
    SIGHUP turned into an exception by `cli.main`) ansible-playbook's whole process group is
    stopped before this returns."""
    log_dir = log_dir or default_log_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = _file_name(playbook)
    log_path = log_dir / f"{Path(name).stem}-{stamp}-{os.getpid()}.log"
    command = build_command(playbook, inventory, **options)
    if become_password is not None:
        command[-1:-1] = ["--become-password-file", "-"]
    result = RunResult(name, 0, log_path, command)

    def consume(events: list[Event]) -> None:
        for event in events:
            result.events.append(event)
            if event["event"] == "stats":
                result.stats = event["hosts"]
            elif event["event"] in ("failed", "unreachable") and not event.get("ignored"):
                result.failures.append(
                    TaskFailure(
                        event["host"],
                        event["task"],
                        event.get("msg", ""),
                        event["event"] == "unreachable",
                    )
                )
            if on_event is not None:
                on_event(event)

    read_fd, write_fd = os.pipe()
    with log_path.open("w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        try:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if become_password is not None else subprocess.DEVNULL,
                env=_environment(write_fd),
                cwd=str(share_dir()),
                pass_fds=(write_fd,),
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run at this point
            )
        except OSError as err:
            os.close(read_fd)
            raise UsageError(f"cannot start ansible-playbook: {err.strerror}") from None
        finally:
            os.close(write_fd)
        reader = _EventReader(read_fd)
        try:
            if process.stdin is not None and become_password is not None:
                # Far below a pipe's buffer: the write never blocks.
                process.stdin.write(become_password.encode() + b"\n")
                process.stdin.close()
            while process.poll() is None:
                consume(reader.read(timeout=0.2))
            consume(reader.read(timeout=0))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; the output so far is in {log_path}") from None
        finally:
            stop_process_group(process)
            os.close(read_fd)
    result.exit_code = process.returncode
    return result


def _last_error_line(log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith(("ERROR!", "[ERROR]")):
            return line
    return lines[-1] if lines else ""


def failure_error(result: RunResult) -> ProvisionError | None:
    """The error to raise for a finished run, or None when it succeeded."""
    code = result.exit_code
    log = f"full log: {result.log_path}"
    if code == 0:
        return None
    if code == 99:
        return Interrupted(f"{result.playbook} was interrupted; {log}")
    if result.failures:
        hosts = sorted({f.host for f in result.failures})
        details = []
        for failure in result.failures:
            what = "unreachable" if failure.unreachable else f"task '{failure.task}'"
            message = failure.message.splitlines()[0] if failure.message else "(no message)"
            details.append(f"{failure.host}: {what}: {message}")
        details.append(log)
        return OperationFailed(
            f"{result.playbook} failed on {counted(len(hosts), 'host')}: {', '.join(hosts)}",
            details=details,
        )
    if code == 5:
        return UsageError(
            f"ansible-playbook rejected its options: {_last_error_line(result.log_path)}"
        )
    reason = {
        4: "could not parse the playbook or inventory, or reach a host",
        250: "ended with an unexpected error",
    }.get(code, "failed")
    return OperationFailed(
        f"ansible-playbook {reason} (exit {code}): {_last_error_line(result.log_path)}",
        details=[log],
    )


def raise_for_failure(result: RunResult) -> None:
    error = failure_error(result)
    if error is not None:
        raise error


def run_checked(name: str, inventory: Path, options: RunOptions, **playbook: Any) -> RunResult:
    """Run the shipped playbook `name`; raise with host, task and message when it fails.
    `playbook` holds the run's own arguments: limit, extra_vars, check, diff."""
    result = run_playbook(
        playbook_fqcn(name),
        inventory,
        log_dir=options.log_dir,
        on_event=options.on_event,
        become_password=options.become_password,
        forks=options.forks,
        verbosity=options.verbosity,
        **playbook,
    )
    raise_for_failure(result)
    return result
