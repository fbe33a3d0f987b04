"""The engine stays readable: the run is a short story of named phases, and no function
in the engine package grows past a page (issue 14, item 2)."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pipeline.runner as runner
from tests.conftest import REPO

MAX_LINES = 60


def _long_functions(folder: str, limit: int) -> list[str]:
    out = []
    for path in sorted((REPO / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_engine_function_is_longer_than_a_page():
    assert _long_functions("pipeline", MAX_LINES) == []


def test_the_check_sees_a_long_function(tmp_path, monkeypatch):
    """The size check itself can fail: a 70-line function is reported."""
    (tmp_path / "pipeline").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    (tmp_path / "pipeline" / "long.py").write_text(f"def long():\n{body}\n")
    monkeypatch.setattr("tests.test_structure.REPO", tmp_path)
    assert _long_functions("pipeline", MAX_LINES) == ["pipeline/long.py:1 long (71 lines)"]


def test_the_run_reads_as_its_phases_with_typed_hand_offs():
    """run() -> ingest, screen, plan, execute, assemble, commit, each named in the
    runner's story, handing dataclasses (not dicts) to the next."""
    src = inspect.getsource(runner._run_locked) + inspect.getsource(runner.run)
    calls = ["ingest_phase", "screen_phase", "plan_phase", "execute(", "assemble(", "commit("]
    positions = [src.index(c) if c in src else -1 for c in calls]
    assert -1 not in positions[1:], dict(zip(calls, positions))
    assert "ingest_phase" in inspect.getsource(runner.run)
    for fn in (runner.screen_phase, runner.plan_phase):
        ret = inspect.signature(fn).return_annotation
        cls = getattr(runner, ret, None) if isinstance(ret, str) else ret
        assert cls is not None and dataclasses.is_dataclass(cls), (fn.__name__, ret)
