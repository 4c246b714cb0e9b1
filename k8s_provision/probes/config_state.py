"""The configuration each running service started with against its files on disk (the record
is written by the roles; the script and its parser live in `k8s_provision.service_state`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from k8s_provision import service_state
from k8s_provision.probes.base import Output, Probe


def config_state(paths_by_unit: Mapping[str, Sequence[str]]) -> Probe[str]:
    # Its ACTIVE column stays `unknown`: every reader takes unit states from the units probe.
    return Probe("config-state", service_state.state_script(paths_by_unit, active=False), _stdout)


def _stdout(output: Output) -> str:
    return output.stdout
