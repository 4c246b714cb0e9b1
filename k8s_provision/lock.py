"""One operation at a time per cluster: a lock file on the first master, so two controllers
exclude each other too. The holder writes who it is (user, controller host, pid, operation,
since) and renews the file's mtime while it runs; a lock whose renewals stopped for LEASE_SECONDS
(the holder was killed, or lost its controller), or whose holder pid is gone on this same
controller, is stale and taken over. Every read-check-write on the host runs under flock, and a
takeover only replaces the exact record judged stale, so two runs never both win."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from k8s_provision.errors import LockHeld, OperationFailed
from k8s_provision.model import Host
from k8s_provision.transport import Transport

LOCK_DIR = "/var/lib/k8s-provision"
LEASE_SECONDS = 60
RENEW_SECONDS = 15
RETRY_SECONDS = 3.0
# exit codes of the host script
_HELD, _BUSY = 1, 3


@dataclass(frozen=True)
class Holder:
    user: str
    controller: str
    pid: int
    operation: str
    since: str
    token: str

    def describe(self) -> str:
        return (
            f"{self.operation} by {self.user}@{self.controller} (pid {self.pid}) since {self.since}"
        )

    def record(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _locked(body: str, lock_dir: str) -> str:
    d = shlex.quote(lock_dir)
    return (
        f"mkdir -p {d} && exec 9>>{d}/lock.guard && flock -w 10 9 || exit {_BUSY}\n"
        f"f={d}/lock\n{body}"
    )


def acquire_script(record: str, expect: str, lock_dir: str = LOCK_DIR) -> str:
    """Write `record` when the lock is free or holds exactly `expect` (a stale record); else
    exit 1 printing the lock's age in seconds and its record."""
    return _locked(
        f"""if [ -s "$f" ]; then
  cur=$(cat "$f")
  if [ "$cur" != {shlex.quote(expect)} ]; then
    echo $(( $(date +%s) - $(stat -c %Y "$f") )); cat "$f"; exit {_HELD}
  fi
fi
printf '%s\\n' {shlex.quote(record)} > "$f.new" && mv -f "$f.new" "$f" && echo acquired
""",
        lock_dir,
    )


def renew_script(record: str, lock_dir: str = LOCK_DIR) -> str:
    return _locked(
        f'[ "$(cat "$f" 2>/dev/null)" = {shlex.quote(record)} ] && touch "$f"\n', lock_dir
    )


def release_script(record: str, lock_dir: str = LOCK_DIR) -> str:
    return _locked(
        f'if [ "$(cat "$f" 2>/dev/null)" = {shlex.quote(record)} ]; then rm -f "$f"; fi\n',
        lock_dir,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(holder: Holder | None, age: int, here: str) -> bool:
    """Renewals stopped, or the holder ran on this controller and its process is gone."""
    if holder is None or age > LEASE_SECONDS:
        return True
    return holder.controller == here and not _pid_alive(holder.pid)


def _parse_held(stdout: str) -> tuple[int, str, Holder | None]:
    first, _, raw = stdout.strip().partition("\n")
    raw = raw.strip()
    try:
        holder = Holder(**json.loads(raw))
    except (ValueError, TypeError):
        holder = None  # an unreadable record: no holder can renew it
    return int(first), raw, holder


class ClusterLock:
    def __init__(
        self,
        host: Host,
        transport: Transport,
        operation: str,
        *,
        lock_dir: str = LOCK_DIR,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.transport = transport
        self.lock_dir = lock_dir
        self.on_note = on_note or (lambda _: None)
        self.me = Holder(
            user=getpass.getuser(),
            controller=socket.gethostname(),
            pid=os.getpid(),
            operation=operation,
            since=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            token=secrets.token_hex(8),
        )
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        expect = ""
        while True:
            result = self.transport.run(
                self.host, acquire_script(self.me.record(), expect, self.lock_dir)
            )
            if result.ok and "acquired" in result.stdout:
                self._renewer = threading.Thread(target=self._renew, daemon=True)
                self._renewer.start()
                return
            if result.exit_code != _HELD:
                why = result.error or (result.stderr or result.stdout).strip() or "no output"
                raise OperationFailed(f"cannot take the cluster lock on {self.host.name}: {why}")
            age, raw, holder = _parse_held(result.stdout)
            if is_stale(holder, age, self.me.controller):
                who = holder.describe() if holder else "an unreadable record"
                self.on_note(
                    f"lock: taking over the stale lock of {who} (last renewed {age} s ago)"
                )
                expect = raw
                continue
            expect = ""
            assert holder is not None  # is_stale is true without one
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"the cluster is busy: {holder.describe()} holds its lock on {self.host.name}",
                    details=[
                        "wait for it to finish, or pass --lock-timeout SECONDS to wait;"
                        f" a lock not renewed for {LEASE_SECONDS} s is taken over automatically"
                    ],
                )
            self.on_note(f"lock: waiting for {holder.describe()}")
            time.sleep(min(RETRY_SECONDS, max(deadline - time.monotonic(), 0.1)))

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            self.transport.run(self.host, renew_script(self.me.record(), self.lock_dir))

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self.transport.run(self.host, release_script(self.me.record(), self.lock_dir))
