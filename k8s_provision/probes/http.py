"""HTTP and kubectl probes against the API server, and how curl's output is read."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from k8s_provision.probes.base import Output, Probe, raw

# curl prints the body, then the status code on a line of its own.
CURL = "curl -sS -m 5 --connect-timeout 3 -w '\\n%{http_code}'"


def split_http(output: Output) -> tuple[int | None, str]:
    """(HTTP status, body) from curl run with -w '\\n%{http_code}'; None when nothing answered."""
    body, _, code = output.stdout.rpartition("\n")
    if output.exit_code != 0 or not code.strip().isdigit() or code.strip() == "000":
        return None, ""
    return int(code), body


def curl_error(output: Output) -> str:
    """Why curl got no answer, in curl's own words without its error number."""
    if output.exit_code == 127:
        return "curl is not installed on this host"
    lines = [line for line in output.stderr.splitlines() if line.strip()]
    if not lines:
        return f"curl exited {output.exit_code}"
    return re.sub(r"^curl: \(\d+\) ", "", lines[-1])


@dataclass(frozen=True)
class Api:
    """How a client on the master reaches the API server: its URL, and from 1.20 (no insecure
    port) the cluster CA and the admin kubeconfig (facts.api_ca, facts.admin_kubeconfig)."""

    url: str
    ca: str = ""
    kubeconfig: str = ""

    @property
    def curl_tls(self) -> str:
        return f" --cacert {shlex.quote(self.ca)}" if self.ca else ""

    @property
    def kubectl(self) -> str:
        credentials = f" --kubeconfig {shlex.quote(self.kubeconfig)}" if self.kubeconfig else ""
        return f"kubectl -s {self.url}{credentials}"


def healthz(api: Api) -> Probe[Output]:
    return Probe("healthz", f"{CURL}{api.curl_tls} {api.url}/healthz", raw)


# verify's one kubectl: both lists in one start-up of kubectl (a Go binary whose start-up alone
# cost about 120 ms of CPU on a lab master, more than any other probe there). kubectl prints
# them as one `List` whose items carry their `kind`.
KUBECTL_GET = "kubectl-get"
KUBECTL_KINDS = {"componentstatuses": "ComponentStatus", "nodes": "Node"}


def kubectl_get(api: Api) -> Probe[Output]:
    """`kubectl get componentstatuses,nodes -o json`. Full resource names: 1.5 discovery has no
    short names, so `cs` is unknown. No --request-timeout: kubectl 1.5 may lack it; the probe's
    `timeout` bounds it."""
    return Probe(KUBECTL_GET, f"{api.kubectl} get {','.join(KUBECTL_KINDS)} -o json", raw)


def kubectl_if_up(name: str, api: Api, arguments: str) -> Probe[Output]:
    """kubectl's text view for the bundle. Each kubectl costs a Go start-up: run it only when
    something answers on the API port."""
    return Probe(
        name,
        f"curl -s -m 3{api.curl_tls} -o /dev/null {api.url}/healthz"
        f" || {{ echo 'nothing answers on {api.url}: kubectl not run' >&2; exit 7; }};"
        f" {api.kubectl} {arguments}",
        raw,
    )
