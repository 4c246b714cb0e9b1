"""The one exception hierarchy. Each error carries the text the operator must read and the exit
code the CLI returns; `cli.main` turns them into messages in one place."""

from __future__ import annotations

import signal


class ProvisionError(Exception):
    """Base class: the operation failed (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        # Tracebacks and pytest show the details too, not only the headline.
        return "\n".join([self.message, *self.details])


class UsageError(ProvisionError):
    """Bad option, missing file, or an environment the command cannot run in (exit 2)."""

    exit_code = 2


class InventoryError(UsageError):
    """The inventory is unreadable or invalid. `details` holds one line per problem."""


class OperationFailed(ProvisionError):
    """A host, a playbook or a check failed (exit 1)."""


class Interrupted(ProvisionError):
    """The operator pressed Ctrl-C (exit 130)."""

    exit_code = 130


class Terminated(Interrupted):
    """SIGTERM or SIGHUP reached the CLI (exit 128 + the signal number, as a shell reports)."""

    def __init__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}; the running playbook was stopped too")
        self.exit_code = 128 + signum


class LockHeld(ProvisionError):
    """Another operation holds the cluster lock (exit 1)."""
