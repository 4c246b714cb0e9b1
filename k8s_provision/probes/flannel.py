"""flannel's keys in etcd, read through etcd's v2 API (flannel 0.7 reads only v2): the network
config and the subnet leases."""

from __future__ import annotations

import json
import shlex

from k8s_provision.probes.base import Output, Probe, raw
from k8s_provision.probes.etcd import Endpoint, endpoint
from k8s_provision.probes.http import CURL


def _get(target: Endpoint | str, path: str) -> str:
    e = endpoint(target)
    return f"{CURL}{e.curl_tls} {shlex.quote(f'{e.url}/v2/keys{path}')}"


def network_config(url: Endpoint | str, prefix: str) -> Probe[Output]:
    return Probe("flannel-config", _get(url, prefix + "/config"), raw)


def subnets(url: Endpoint | str, prefix: str) -> Probe[Output]:
    return Probe("flannel-subnets", _get(url, prefix + "/subnets"), raw)


def parse_leases(body: str, prefix: str) -> dict[str, str]:
    """{subnet: PublicIP} from a v2 GET of <prefix>/subnets (keys like .../172.17.23.0-24)."""
    nodes = json.loads(body).get("node", {}).get("nodes", []) or []
    leases: dict[str, str] = {}
    for node in nodes:
        name = str(node.get("key", "")).removeprefix(f"{prefix}/subnets/")
        subnet = name.replace("-", "/")
        try:
            public_ip = str(json.loads(node.get("value") or "{}").get("PublicIP", ""))
        except ValueError:
            public_ip = ""
        leases[subnet] = public_ip
    return leases
