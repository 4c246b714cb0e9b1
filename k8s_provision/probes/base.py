"""The probe type, what one probe printed (`Output`) and what one host gave (`HostFacts`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

PROBE_TIMEOUT = 20  # seconds each probe may run on the host (coreutils `timeout`)
# The exit code of a probe killed at that deadline: coreutils `timeout` exits with it.
TIMED_OUT = 124

T = TypeVar("T")


@dataclass(frozen=True)
class Output:
    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def text(self) -> str:
        return "\n".join(part.strip() for part in (self.stdout, self.stderr) if part.strip())


def raw(output: Output) -> Output:
    """The parser of a probe whose reader needs the exit code and both streams as they are."""
    return output


@dataclass(frozen=True)
class Probe(Generic[T]):
    """One fact about a host: `command` runs there (under sh, bounded by `PROBE_TIMEOUT`) and
    `parse` turns what it printed into the value the checks read. `name` has no spaces: the
    batch framing splits on them."""

    name: str
    command: str
    parse: Callable[[Output], T]


@dataclass(frozen=True)
class HostFacts:
    """What the probes printed on one host, or why they could not run (`error`)."""

    host: str
    outputs: Mapping[str, Output] = field(default_factory=dict)
    error: str | None = None

    def read(self, probe: Probe[T]) -> T | None:
        """The probe's parsed output; None when it did not run on this host."""
        output = self.outputs.get(probe.name)
        return None if output is None else probe.parse(output)
