"""Time the lab's lifecycle: cold `up` (no rootfs cache), warm `up` (cache present, lab down
before), no-op `up` (lab running) and `down`. Needs root; uses its own lab name and, for the
cold run, a temporary cache directory, so the shared cache and other labs are left alone.

    sudo .venv/bin/python bench/lab_bench.py [--nodes 2] [--skip-cold]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from k8s_provision import lab

BENCH_LAB = "k8spbench"


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument(
        "--skip-cold", action="store_true", help="Use the shared cache; no cold build."
    )
    args = parser.parse_args()
    lab.require_environment()

    cold_cache = None if args.skip_cold else Path(tempfile.mkdtemp(prefix="k8sp-bench-cache-"))
    cache = cold_cache or lab.make_config(BENCH_LAB).cache_dir
    config = lab.make_config(BENCH_LAB, cache_dir=cache)
    figures: dict[str, float | int | None] = {}
    try:
        lab.down(config=config)
        if cold_cache is not None:
            figures["cold_up_s"] = timed(lambda: lab.up(nodes=args.nodes, config=config))
            figures["down_after_cold_s"] = timed(lambda: lab.down(config=config))
        figures["warm_up_s"] = timed(lambda: lab.up(nodes=args.nodes, config=config))
        figures["noop_up_s"] = timed(lambda: lab.up(nodes=args.nodes, config=config))
        figures["down_s"] = timed(lambda: lab.down(config=config))
        info = lab.base_info(cache) or {}
        figures["rootfs_build_s"] = _number(info.get("build_seconds"))
        figures["rootfs_size_mb"] = _number(info.get("size_bytes"), scale=1e-6)
    finally:
        lab.down(config=config)
        if cold_cache is not None:
            shutil.rmtree(cold_cache)

    print(f"\nlab lifecycle, master + {args.nodes} nodes:")
    for key, value in figures.items():
        print(f"  {key:<18} {'n/a' if value is None else f'{value:.2f}'}")
    print(json.dumps({"nodes": args.nodes, **figures}))
    return 0


def _number(value: object, scale: float = 1.0) -> float | None:
    return float(value) * scale if isinstance(value, int | float) else None


if __name__ == "__main__":
    sys.exit(main())
