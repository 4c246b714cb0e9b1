"""Stand-in for the get-pip bootstrap script ansible-test downloads from its own file host, which
CI cannot reach: ansible-test runs it as `get-pip.py [pip options] pip==X packages...` inside an
empty virtual environment. Python's bundled pip goes in first, then pip installs the requested
versions from the configured package index like any other requirement. ansible-test passes no
PIP_CERT to it, and the bundled pip (older than 24.2) trusts only its own CA list, so it is told
to trust the system's, as pip 24.2 and later do by default."""

from __future__ import annotations

import ensurepip
import ssl
import subprocess
import sys

# get-pip's own switches; a pip install has no equivalent and needs none.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

ensurepip.bootstrap()
subprocess.run(
    [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--cert",
        str(ssl.get_default_verify_paths().cafile),
        *(a for a in sys.argv[1:] if a not in GET_PIP_ONLY),
    ],
    check=True,
)
