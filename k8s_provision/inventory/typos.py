""" "Did you mean" for our own variables, silent on everybody else's.

An inventory that also drives kubespray carries hundreds of variables of its own; none of them
may be flagged. So a name counts as a typo of one of ours only when it is the same name with
different case or separators, or the same words with exactly one word misspelt into something
that is not a word any variable (ours or a common one of other tools) uses. Results are cached
per name: group variables repeat on every host, and the check stays cheap for 1000 hosts."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from k8s_provision.inventory.connection import connection_variable_names
from k8s_provision.model import variable_spec


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def close_match(name: str, candidates: Sequence[str]) -> str | None:
    """A candidate one edit away (two for long names), or None. Short names are left alone:
    too many unrelated short words are one edit apart. Used for group names."""
    if len(name) < 4:
        return None
    limit = 2 if len(name) >= 8 else 1
    best = min(candidates, key=lambda c: edit_distance(name, c), default=None)
    if best is None or best == name:
        return None
    return best if edit_distance(name, best) <= limit else None


@functools.cache
def known_variables() -> tuple[str, ...]:
    spec = variable_spec()
    return tuple(dict.fromkeys([*spec.cluster, *spec.host, *connection_variable_names()]))


# Words other tools' variables are made of that sit one edit from a word of ours (kubespray:
# kube_pods_subnet, etcd_member_name, kube_network_node_prefix, ...). A misspelling into one of
# them is more likely a real variable than a typo.
_OTHER_TOOLS_WORDS = frozenset(
    {
        "addr", "addrs", "arg", "code", "date", "host", "hosts", "images", "levels",
        "logs", "managed", "member", "modes", "names", "networks", "nodes", "option", "peers",
        "pods", "ports", "post", "prefixes", "sort", "tokens", "user", "users", "backends",
        "clusters", "domains", "ipv6", "ipv4", "ips", "mod", "api", "apis", "path", "paths",
    }
)  # fmt: skip


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


@functools.cache
def _index() -> tuple[dict[str, str], dict[int, list[tuple[str, list[str]]]], frozenset[str]]:
    squashed = {_squash(k): k for k in known_variables()}
    by_words: dict[int, list[tuple[str, list[str]]]] = {}
    words: set[str] = set(_OTHER_TOOLS_WORDS)
    for known in known_variables():
        parts = known.split("_")
        words.update(parts)
        by_words.setdefault(len(parts), []).append((known, parts))
    return squashed, by_words, frozenset(words)


@functools.cache
def suggestion(name: str) -> str | None:
    """The variable of ours `name` is likely a typo of, or None."""
    if len(name) < 4 or name in known_variables():
        return None
    squashed, by_words, words = _index()
    same = squashed.get(_squash(name))
    if same is not None:
        return same
    parts = name.split("_")
    for known, known_parts in by_words.get(len(parts), []):
        differ = [(a, b) for a, b in zip(parts, known_parts, strict=True) if a != b]
        if len(differ) != 1:
            continue
        theirs, ours = differ[0]
        if theirs in words:
            continue
        limit = 1 if len(ours) < 6 else 2
        if edit_distance(theirs, ours) <= limit:
            return known
    return None
