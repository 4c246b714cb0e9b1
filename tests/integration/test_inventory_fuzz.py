"""Seeded, time-bounded fuzzing of `render` over mutated sample inventories: whatever the
mutation, the exit code is 0 or 2, nothing prints a traceback, a refused inventory writes
nothing and an accepted one writes only inside -o."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from k8s_provision.cli import cli

SEED = 20261130
CASES = 400
# Well under the 60 s limit even on a loaded machine; the count bounds it on a fast one.
BUDGET_SECONDS = 20.0
# What hostile inventories are made of: quotes, newlines, shell operators, path parts, Jinja,
# YAML anchors, host ranges, IPv6.
FRAGMENTS = [
    '"', "'", "\n", ";", "$(id)", "`id`", "/", "..", "../..", "[0:3]", "{{ x }}", "{{", "*a",
    "&a ", ":", "=", " ", "#", "\t", "\\", "fd00::1", "10.0.0.1", "-oProxyCommand=id", "\0",
    "[masters]\n", "[etcd]\n", "ip=", "etcd_data_dir=/", "kube_node_name=A_B",
]  # fmt: skip


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        lines = text.splitlines(keepends=True) or [""]
        kind = rng.randrange(5)
        at = rng.randrange(len(text) + 1)
        if kind == 0:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif kind == 1:
            text = text[:at] + text[at + rng.randint(1, 8) :]
        elif kind == 2:
            line = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[line])
            text = "".join(lines)
        elif kind == 3:
            rng.shuffle(lines)
            text = "".join(lines)
        else:
            line = rng.randrange(len(lines))
            lines[line] = lines[line].replace("=", "=" + rng.choice(FRAGMENTS), 1)
            text = "".join(lines)
    return text


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("sample", ["reference.ini", "kubespray.yml"])
def test_mutated_inventories_exit_0_or_2_and_write_only_inside_out(
    repo: Path, sample: str, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-{sample}")  # noqa: S311 -- reproducible fuzzing, not secrets
    original = (repo / "inventories" / sample).read_text()
    deadline = time.monotonic() + BUDGET_SECONDS / 2
    runner = CliRunner()
    ran = 0
    for number in range(CASES):
        if time.monotonic() > deadline:
            break
        ran += 1
        work = tmp_path / str(number)
        work.mkdir()
        path = work / sample
        path.write_bytes(mutate(original, rng).encode("utf-8", "surrogatepass"))
        out = work / "out"
        before = tree(work)
        result = runner.invoke(cli, ["render", str(path), "-o", str(out)])
        shown = f"case {number}:\n{path.read_text(errors='replace')}\n{result.output}"
        assert result.exit_code in (0, 2), shown
        assert "Traceback" not in result.output, shown
        assert result.exception is None or isinstance(result.exception, SystemExit), shown
        after = tree(work)
        if result.exit_code == 2:
            assert after == before, shown
        else:
            assert {p for p in after - before if not p.startswith("out")} == set(), shown
    print(f"{sample}: {ran} mutated inventories")
    assert ran >= 20, "too slow to fuzz meaningfully"
