"""The converged fast path: confirm in one SSH round per host that site.yml has nothing to do.

- `playbook`: site.yml's plays, role tasks and role variables, evaluated for one host;
- `expected`: what site.yml leaves on a host, from those tasks and `render`'s bytes; every
  state-changing task maps to a fingerprint kind (`KINDS`);
- `compare`: the fingerprint probes of a host and the differences from the expected state;
- `check`: all hosts in parallel through the probes' collector, and the verdict
  (`FastPathResult`: matches, the differing hosts, whether a difference is cluster-wide, the
  --limit for site.yml)."""

from __future__ import annotations

from k8s_provision.fastpath.check import Decision, FastPathResult, Options, check, decide, describe
from k8s_provision.fastpath.compare import Difference

__all__ = ["Decision", "Difference", "FastPathResult", "Options", "check", "decide", "describe"]
