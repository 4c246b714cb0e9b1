"""The lab's one container image, built locally: lab hosts cannot pull anything.

A static `pause` binary (pause/pause.go, built with Debian's golang-go beside the Kubernetes
binaries) goes into a one-layer OCI image archive that `ctr images import` reads. The image
serves as the pod sandbox (containerd's sandbox_image, kube_pod_infra_image) and as the
workload of the lab's test pods. The archive is reproducible: same binary, same digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from k8s_provision.errors import OperationFailed

PAUSE_SOURCE = Path(__file__).with_name("pause") / "pause.go"


def build_pause(out: Path, work: Path) -> Path:
    """Compile the pause binary statically into `out`."""
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOCACHE": str(work / "gocache"),
        "HOME": str(work),
        # A single file outside any module: no module lookups, nothing fetched.
        "GO111MODULE": "off",
    }
    argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), str(PAUSE_SOURCE)]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise OperationFailed(
            "building the lab's pause binary failed", details=result.stderr.splitlines()[-10:]
        )
    return out


def image_archive(binary: bytes, name: str) -> bytes:
    """An OCI image layout tarball holding `binary` as /pause, its entrypoint, named `name`."""
    layer = _tar({"pause": (binary, 0o755)})
    layer_digest = _digest(layer)
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
    )
    blobs = {
        f"blobs/sha256/{_digest(b).split(':')[1]}": (b, 0o644) for b in (layer, config, manifest)
    }
    return _tar(
        {
            "oci-layout": (_json({"imageLayoutVersion": "1.0.0"}), 0o644),
            "index.json": (index, 0o644),
            **blobs,
        }
    )


def _tar(members: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar with fixed owners and times, so equal input gives equal bytes (and digests)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, (data, mode) in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
