"""What `k8s_provision.probes.files.script` prints on a host holding the given file states, for
tests that build a host's probe output (the reader of real output is tested by running the
script in a real shell)."""

from __future__ import annotations

from collections.abc import Iterable

from k8s_provision.probes.files import STAT_MARK, FileState

_STAT_KINDS = {"file": "regular file", "dir": "directory"}


def files_output(states: Iterable[FileState]) -> str:
    """stat's lines, then sha256sum's, then `tail -v`'s for the states with content; a missing
    path prints nothing (the tools only complain on stderr)."""
    states = [s for s in states if s.present]
    stats = "".join(
        f"{STAT_MARK}\t{_STAT_KINDS[s.kind]}\t{s.mode}\t{s.owner}\t{s.group}\t{s.path}\n"
        for s in states
    )
    digests = "".join(f"{s.sha256}  {s.path}\n" for s in states if s.kind == "file")
    shown = "\n".join(f"==> {s.path} <==\n{s.content}" for s in states if s.content)
    return stats + digests + shown
