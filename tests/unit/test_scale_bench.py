"""bench/scale_bench.py writes its table at the head of docs/performance.md and keeps the
sections written by hand below it (earlier runs and what changed between them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale_bench", REPO / "bench/scale_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROW = {
    "lab up": 6.0,
    "first converge": 100.0,
    "converged up": 2.0,
    "plan": 1.5,
    "verify": 1.6,
    "diagnose": 3.0,
    "ping": 1.8,
    "verify growth": 1.0,
    "diagnose growth": 1.0,
    "idle lab": 0.2,
}


def test_write_replaces_the_head_and_keeps_the_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench()
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nold table\n\n## An earlier run\n\nits table\n")
    monkeypatch.setattr(bench, "DOC", doc)
    monkeypatch.setattr(bench, "chart", lambda rows: None)  # matplotlib is the bench extra
    bench.write({3: ROW, 12: {**ROW, "verify growth": 1.25, "diagnose growth": 1.4}})
    text = doc.read_text()
    assert "old table" not in text
    assert text.startswith("# Performance\n")
    assert "| 12 | 6.0 | 100.0 | 2.0 | 1.5 | 1.6 | 3.0 | 1.8 | 1.11 | 0.83 | 1.25 | 1.40 |" in text
    assert "From 3 to 12 hosts of one lab: verify 1.25x, diagnose 1.40x." in text
    assert text.endswith("\n## An earlier run\n\nits table\n")
    # A page without sections (the first run) gets the head alone.
    doc.unlink()
    bench.write({3: ROW})
    assert "##" not in doc.read_text() and doc.read_text().endswith(".png)\n")
