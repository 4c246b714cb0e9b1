"""Filter `k8s_provision.cluster.stale_files` (documented in stale_files.yml): the planned files
(`k8s.files` entries) whose copy on the host differs from what `render` writes, so the roles
template only those.

    loop: "{{ etcd_files | k8s_provision.cluster.stale_files(etcd_found.files) }}"

`found` is the `files` list of an `ansible.builtin.find` run with `get_checksum: true` over the
files' directories. A file is stale when it is missing, its SHA-1 differs from the planned
`checksum`, or it is not mode 0644 owned by root:root. The template task still decides on its
own whether it changes anything; this only spares it the files that are already right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MODE = "0644"
OWNER = "root"


def stale_files(
    planned: Sequence[Mapping[str, Any]], found: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    on_host = {str(f["path"]): f for f in found}
    stale = []
    for item in planned:
        current = on_host.get(str(item["dest"]))
        if (
            current is None
            or current.get("checksum") != item.get("checksum")
            or current.get("mode") != MODE
            or current.get("pw_name") != OWNER
            or current.get("gr_name") != OWNER
        ):
            stale.append(item)
    return stale


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stale_files": stale_files}
