"""The rolling migration of a plaintext (classic) etcd cluster to k8s_security tls: the probe
each member answers, its parser, and the plan the etcd role follows (roles/etcd/tasks/migrate.yml).

A member's peer URL lives in the cluster's membership, not in its configuration file, so it
cannot change by rewriting the file. The migration takes two rounds, one member at a time,
so at most one member is down at any moment:

1. prepare: the member restarts with its certificates but still serving plain http (a runtime
   drop-in keeps the classic URLs). It can now dial peers that serve https.
2. switch: `etcdctl member update` lists its https peer URL, then it restarts with the file of
   the tls layout (drop-in removed).

The plan is computed from what each member runs with (its process environment) and the peer
URLs the membership lists, never from what this run changed: a run stopped at any point is
finished by the next one. A member the membership no longer lists as plaintext and that
serves https is done. etcd's own data is never touched."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PLAIN_PEER = "ETCD_LISTEN_PEER_URLS=http://"
PEER_CERT = "ETCD_PEER_CERT_FILE="


def probe_script(tls_args: Sequence[str], tls_local: str, plain_local: str) -> str:
    """Print the etcd process's peer listen URL and peer certificate settings (from
    /proc/PID/environ: what it runs with, whatever the file says now), then the membership as
    JSON, asked over https with the tool's certificate or, failing that, over plain http.
    systemd 219 (CentOS 7) has no `show --value`, hence the cut."""
    listed = "member list -w json --dial-timeout=2s --command-timeout=5s 2>/dev/null"
    tls = shlex.join(["etcdctl", *tls_args, f"--endpoints={tls_local}"])
    plain = shlex.join(["etcdctl", f"--endpoints={plain_local}"])
    return (
        "pid=$(systemctl show -p MainPID etcd.service | cut -d= -f2); "
        'if test "${pid:-0}" -gt 0; then '
        "tr '\\0' '\\n' < /proc/\"$pid\"/environ"
        " | grep -E '^ETCD_(LISTEN_PEER_URLS|PEER_CERT_FILE)='; fi; "
        f"ETCDCTL_API=3 {tls} {listed} || ETCDCTL_API=3 {plain} {listed}; true"
    )


@dataclass(frozen=True)
class Served:
    """What one member's probe found."""

    running: bool
    plaintext: bool  # its process listens for peers over plain http
    peer_certificate: bool  # its process has a peer certificate (it can dial https peers)
    members: tuple[Mapping[str, Any], ...] = field(default=())


def parse_probe(stdout: str) -> Served:
    lines = stdout.splitlines()
    env = [line.strip() for line in lines if line.strip().startswith("ETCD_")]
    members: tuple[Mapping[str, Any], ...] = ()
    for line in lines:
        if line.strip().startswith("{"):
            try:
                members = tuple(json.loads(line).get("members") or ())
            except ValueError:
                continue
            break
    return Served(
        running=bool(env),
        plaintext=any(line.startswith(PLAIN_PEER) for line in env),
        peer_certificate=any(line.startswith(PEER_CERT) and line != PEER_CERT for line in env),
        members=members,
    )


def plan(
    results: Sequence[Mapping[str, Any]],
    hosts: Sequence[str],
    etcd_members: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The migration's steps, in the inventory's member order. `results` are the probe's
    registered results for `hosts` (skipped where the member has no data yet: a new member
    joins with the tls layout directly); `etcd_members` is the model's member list (name,
    member_name). Returns {"prepare": [host], "switch": [host], "member_ids": {host: hex id}},
    where member_ids holds the members the membership still lists with a plain http peer URL."""
    served = {
        host: parse_probe(str(result.get("stdout", "")))
        for host, result in zip(hosts, results, strict=True)
        if not result.get("skipped")
    }
    listed = next((s.members for s in served.values() if s.members), ())
    plain_ids = {
        # etcdctl's JSON spells it "ID", a decimal uint64; `member update` takes it in hex.
        str(m.get("name", "")): format(int(m["ID"]), "x")
        for m in listed
        if any(str(url).startswith("http://") for url in m.get("peerURLs") or ())
    }
    prepare: list[str] = []
    switch: list[str] = []
    member_ids: dict[str, str] = {}
    for member in etcd_members:
        host = str(member["name"])
        state = served.get(host)
        if state is None:
            continue
        member_id = plain_ids.get(str(member["member_name"]))
        if member_id is not None:
            member_ids[host] = member_id
            if not state.peer_certificate:
                prepare.append(host)
        if member_id is not None or state.plaintext:
            switch.append(host)
    # Nothing is listed plaintext and nobody serves it: the cluster is already tls.
    return {"prepare": prepare, "switch": switch, "member_ids": member_ids}
