"""The failure signatures (data: signatures.yml): their model, and loading them with every
placeholder a finding's text uses checked against what each of its matches fills in."""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k8s_provision.errors import ProvisionError

SIGNATURES_PATH = Path(__file__).parent.parent / "signatures.yml"
SEVERITIES = ("error", "warning")

# Placeholders every finding can use, filled from the inventory for the finding's host.
COMMON_VARS = (
    "host", "ip", "address", "ssh_port", "ssh_user", "key_file", "inventory", "since", "prefix",
    "network", "backend", "network_json", "endpoints", "client_port", "peer_port", "member_url",
    "peer_url", "first_etcd", "healthy_member", "healthy_member_url", "data_dir",
    "etcd_config_path", "flanneld_config_path", "master", "master_ip", "api_port", "api_url",
    "kubelet_port", "node_name",
)  # fmt: skip
SOURCE_VARS: dict[str, tuple[str, ...]] = {
    "ssh": ("error",),
    "unit": ("unit", "state", "load", "last_error"),
    "journal": ("unit", "line"),
    "check": ("check", "detail"),
    "output": ("probe",),
    "condition": (),
}
CONDITION_VARS: dict[str, tuple[str, ...]] = {
    "drift": ("path", "state", "diff_stat", "file_component"),
    "clock_skew": ("skew", "offsets"),
    "disk_full": ("path", "mount", "use_pct", "free", "what"),
    "firewalld_blocks": ("ports", "add_ports"),
    "iptables_blocks": ("ports", "rule", "iptables_args"),
    "selinux_enforcing": ("mode",),
    "flannel_key_other_prefix": ("other_prefix", "other_value"),
    "etcd_member_missing": ("member", "seen_from"),
}
# Sources whose text can name several problems at once (every regex match is a finding).


@dataclass(frozen=True)
class Match:
    """One way a signature recognises its fault."""

    source: str
    name: str = "*"
    regex: re.Pattern[str] | None = None
    window: float | None = None  # journal: None = last run of a unit not running now
    host: str | None = None  # a template naming the host at fault, when not the observer
    # A named group: the match counts only when its value is not an etcd member's client
    # address (then that member's own findings explain it).
    not_member: str | None = None
    # Windowed journal matches: verify checks whose pass shows that what was logged is over.
    cleared_by: tuple[str, ...] = ()

    def variables(self) -> set[str]:
        names = set(SOURCE_VARS[self.source])
        if self.source == "condition":
            names |= set(CONDITION_VARS.get(self.name, ()))
        if self.regex is not None:
            names |= set(self.regex.groupindex)
        return names


@dataclass(frozen=True)
class Signature:
    id: str
    component: str
    severity: str
    rank: int
    matches: tuple[Match, ...]
    diagnosis: str
    fix: tuple[str, ...]
    suppressed_by: frozenset[str] = frozenset()
    # For a finding a match moved off the host that saw it (`host`): ids that, found for
    # that observer, explain what it saw (it refused its peers because its own CA is wrong).
    observer_suppressed_by: frozenset[str] = frozenset()


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _parse_match(sig_id: str, raw: Mapping[str, Any]) -> Match:
    source = str(raw.get("source", ""))
    if source not in SOURCE_VARS:
        raise ValueError(f"{sig_id}: unknown source {source!r} (one of {', '.join(SOURCE_VARS)})")
    name = str(raw.get("name", "*"))
    if source == "condition" and name not in CONDITION_VARS:
        raise ValueError(f"{sig_id}: unknown condition {name!r}")
    window = raw.get("window")
    if window is not None and (source != "journal" or not isinstance(window, int)):
        raise ValueError(f"{sig_id}: window is a number of seconds, for journal matches only")
    regex = re.compile(str(raw["regex"])) if "regex" in raw else None
    extra = set(raw) - {"source", "name", "regex", "window", "host", "not_member", "cleared_by"}
    if extra:
        raise ValueError(f"{sig_id}: unknown keys in match: {', '.join(sorted(extra))}")
    not_member = raw.get("not_member")
    if not_member is not None and (regex is None or not_member not in regex.groupindex):
        raise ValueError(f"{sig_id}: not_member names a group of the match's regex")
    cleared_by = raw.get("cleared_by", [])
    if cleared_by and (
        window is None
        or not isinstance(cleared_by, list)
        or not all(isinstance(c, str) for c in cleared_by)
    ):
        raise ValueError(f"{sig_id}: cleared_by is a list of verify checks, for windowed matches")
    return Match(
        source,
        name,
        regex,
        float(window) if window is not None else None,
        raw.get("host"),
        not_member,
        tuple(cleared_by),
    )


def parse_signatures(raw: Any) -> tuple[Signature, ...]:
    """Validate signatures.yml's content: every placeholder a template uses must be filled by
    every alternative of its match, so a finding can never fail to format."""
    signatures: list[Signature] = []
    for item in raw["signatures"]:
        sig_id = str(item["id"])
        severity = str(item["severity"])
        if severity not in SEVERITIES:
            raise ValueError(f"{sig_id}: severity must be one of {', '.join(SEVERITIES)}")
        alternatives = item["match"]
        if not isinstance(alternatives, list) or not alternatives:
            raise ValueError(f"{sig_id}: match must be a non-empty list")
        matches = tuple(_parse_match(sig_id, alt) for alt in alternatives)
        sig = Signature(
            id=sig_id,
            component=str(item["component"]),
            severity=severity,
            rank=int(item["rank"]),
            matches=matches,
            diagnosis=" ".join(str(item["diagnosis"]).split()),
            fix=tuple(str(line) for line in item["fix"]),
            suppressed_by=frozenset(str(s) for s in item.get("suppressed_by", [])),
            observer_suppressed_by=frozenset(
                str(s) for s in item.get("observer_suppressed_by", [])
            ),
        )
        available = set(COMMON_VARS) | set.intersection(*(m.variables() for m in matches))
        for template in (sig.component, sig.diagnosis, *sig.fix):
            unknown = _placeholders(template) - available
            if unknown:
                raise ValueError(
                    f"{sig_id}: placeholders {', '.join(sorted(unknown))} are not filled by"
                    f" every match of this signature: {template!r}"
                )
        for match in matches:
            unknown = _placeholders(match.host or "") - (set(COMMON_VARS) | match.variables())
            if unknown:
                raise ValueError(f"{sig_id}: host template uses unknown {sorted(unknown)}")
        signatures.append(sig)
    ids = [s.id for s in signatures]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate signature ids: {', '.join(duplicates)}")
    for sig in signatures:
        for key, named in (
            ("suppressed_by", sig.suppressed_by),
            ("observer_suppressed_by", sig.observer_suppressed_by),
        ):
            unknown_ids = named - set(ids)
            if unknown_ids:
                raise ValueError(f"{sig.id}: {key} names unknown {sorted(unknown_ids)}")
    return tuple(signatures)


@functools.cache
def load_signatures(path: Path = SIGNATURES_PATH) -> tuple[Signature, ...]:
    try:
        return parse_signatures(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, re.error, yaml.YAMLError) as err:
        # A packaging bug, not the operator's: say which file and why.
        raise ProvisionError(f"{path}: invalid signature file: {err}") from err
