"""Probes: what runs on a host to learn one fact, and how its output is read.

A probe (`base.Probe`) pairs a name, the shell command it runs and the parser of its output,
as pyinfra's facts pair `command` with `process`. This package owns the probes and their
parsers (systemd and the journal, etcd, HTTP and kubectl, sockets and interfaces, iptables,
firewalld, disks and the OS) and the one collector (`collector.collect`) that verify and
diagnose share: one SSH session per host, every probe of the host batched into one script
(`batch`), all hosts in parallel."""

from __future__ import annotations

from k8s_provision.probes.base import PROBE_TIMEOUT, TIMED_OUT, HostFacts, Output, Probe, raw
from k8s_provision.probes.collector import Clock, Collection, collect

__all__ = [
    "PROBE_TIMEOUT",
    "TIMED_OUT",
    "Clock",
    "Collection",
    "HostFacts",
    "Output",
    "Probe",
    "collect",
    "raw",
]
