"""Run ansible-playbook as a subprocess with an argument list (as molecule does), stream its
events to a progress callback, keep the full output in a log file, and turn Ansible's exit codes
into errors that name host, task and message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from k8s_provision.errors import Interrupted, OperationFailed, ProvisionError, UsageError
from k8s_provision.paths import COLLECTION, ansible_cfg, playbooks_dir, share_dir

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


@contextmanager
def _secret_file(secret: str | None) -> Iterator[str | None]:
    """A become password in a 0600 file that ansible reads (become_password_file), removed
    afterwards, so it never appears in argv, the environment of children, or the log."""
    if secret is None:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="k8sp-become-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secret.encode())
        os.close(fd)
        yield name
    finally:
        Path(name).unlink(missing_ok=True)


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


def _environment(events_file: Path, become_password_file: str | None) -> dict[str, str]:
    # The become password reaches ansible only through the 0600 file.
    env = {k: v for k, v in os.environ.items() if k != "K8SP_BECOME_PASSWORD"}
    env.setdefault("ANSIBLE_CONFIG", str(ansible_cfg()))
    env["ANSIBLE_CALLBACKS_ENABLED"] = f"{COLLECTION}.events"
    env["K8SP_EVENTS_FILE"] = str(events_file)
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    if become_password_file:
        env["ANSIBLE_BECOME_PASSWORD_FILE"] = become_password_file
    return env


class _EventReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = ""

    def read(self) -> list[Event]:
        try:
            with self.path.open(encoding="utf-8") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
                self.offset = handle.tell()
        except FileNotFoundError:
            return []
        text = self.partial + chunk
        lines = text.split("\n")
        self.partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


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
    a failed run: see `raise_for_failure`."""
    log_dir = log_dir or default_log_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = _file_name(playbook)
    log_path = log_dir / f"{Path(name).stem}-{stamp}-{os.getpid()}.log"
    events_path = log_path.with_suffix(".events")
    command = build_command(playbook, inventory, **options)
    result = RunResult(name, 0, log_path, command)
    reader = _EventReader(events_path)

    def consume() -> None:
        for event in reader.read():
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

    with _secret_file(become_password) as password_file, log_path.open("w") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        try:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_environment(events_path, password_file),
                cwd=str(share_dir()),
            )
        except OSError as err:
            raise UsageError(f"cannot start ansible-playbook: {err.strerror}") from None
        try:
            while process.poll() is None:
                consume()
                time.sleep(0.1)
        except KeyboardInterrupt:
            # ansible-playbook got the same SIGINT from the terminal; let it stop its workers.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise Interrupted(f"interrupted; the output so far is in {log_path}") from None
        consume()
    events_path.unlink(missing_ok=True)
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
        noun = "host" if len(hosts) == 1 else "hosts"
        return OperationFailed(
            f"{result.playbook} failed on {len(hosts)} {noun}: {', '.join(hosts)}", details=details
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
