"""The state of many files in three processes, whatever their number: one `stat` for kind,
mode and owners, one `sha256sum` for the digests, one `tail` for the content of those whose
content is asked for (certificates: public). The fast path's fingerprint and `certs check`
read every managed file on every run, so a few forks per file was most of a node's probe CPU.
A path that is neither a regular file nor a directory (after symlinks) counts as missing."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from k8s_provision.probes.base import Output

STAT_MARK = "@@stat"
_KINDS = {"regular file": "file", "regular empty file": "file", "directory": "dir"}
_DIGEST = re.compile(r"^(?P<sha>[0-9a-f]{64})  (?P<path>.+)$")
_HEADER = re.compile(r"^==> (?P<path>.+) <==$")


@dataclass(frozen=True)
class FileState:
    """A path on the host: `kind` file, dir or missing; the rest empty when missing, `sha256`
    empty for a directory, `content` only for the paths asked to show."""

    path: str
    kind: str
    sha256: str = ""
    mode: str = ""  # octal without leading zeros, as stat's %a prints it
    owner: str = ""
    group: str = ""
    content: str = ""

    @property
    def present(self) -> bool:
        return self.kind != "missing"


def script(paths: Sequence[str], show: Sequence[str] = ()) -> str:
    """POSIX sh printing the state of `paths` and the content of `show` (a subset). Missing
    paths only make the tools complain on stderr; the script itself exits 0."""
    if not paths:
        return "true"
    quoted = " ".join(shlex.quote(p) for p in paths)
    lines = [
        # %F is translated in other locales ("Normale Datei").
        f"LC_ALL=C stat -L --printf '{STAT_MARK}\\t%F\\t%a\\t%U\\t%G\\t%n\\n' -- {quoted}",
        f"sha256sum -- {quoted}",
    ]
    if show:
        lines.append(f"tail -v -n +1 -- {' '.join(shlex.quote(p) for p in show)}")
    return "; ".join(lines) + "; true"


def parse(output: Output, paths: Sequence[str] = ()) -> dict[str, FileState]:
    """{path: FileState} for every path `script` printed, and `missing` for each of `paths`
    it did not."""
    kinds: dict[str, tuple[str, str, str, str]] = {}
    digests: dict[str, str] = {}
    contents: dict[str, list[str]] = {}
    shown: list[str] | None = None
    for line in output.stdout.splitlines():
        header = _HEADER.match(line)
        if header:
            shown = contents.setdefault(header["path"], [])
        elif shown is not None:
            shown.append(line)
        elif line.startswith(STAT_MARK + "\t"):
            fields = line.split("\t", 5)
            if len(fields) == 6 and fields[1] in _KINDS:
                kinds[fields[5]] = (_KINDS[fields[1]], fields[2], fields[3], fields[4])
        elif digest := _DIGEST.match(line):
            digests[digest["path"]] = digest["sha"]
    found = {path: FileState(path, "missing") for path in paths}
    for path, (kind, mode, owner, group) in kinds.items():
        text = "\n".join(contents.get(path, ())).strip()
        sha = digests.get(path, "") if kind == "file" else ""
        found[path] = FileState(path, kind, sha, mode, owner, group, text + "\n" if text else "")
    return found
