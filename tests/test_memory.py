"""Issue 17, item 2: a run lets go of each clip's result as soon as its shard is written,
so what workers hold is bounded by the clips not yet written, not by the run's size."""

import pytest

from pipeline import execute
from pipeline.catalog import load_catalog
from pipeline.runner import run
from schemas.arrays import SHARD_SAMPLES


@pytest.mark.slow
def test_clip_results_are_released_as_each_shard_is_written(dataset_copy, monkeypatch):
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    seen = []
    real = execute._Execution.shard_done

    def watched(self, f, *a):
        written = list(self.writers[f])
        out = real(self, f, *a)
        seen.append((written, set(self.results), set(self.writers)))
        return out

    monkeypatch.setattr(execute._Execution, "shard_done", watched)
    held = []
    real_run = execute._Execution.run

    def run_and_look(self, *a):
        real_run(self, *a)
        held.append((dict(self.results), dict(self.writers)))

    monkeypatch.setattr(execute._Execution, "run", run_and_look)
    res = run(cat, cat.dataset("t"), workers=1, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed and res.recomputed == 20
    assert len(seen) == -(-20 // SHARD_SAMPLES)  # one writer per shard
    done: set = set()
    for written, results, _ in seen:
        done |= set(written)
        assert not results & done  # no written clip's result is held any more
    assert held == [({}, {})]  # nothing held when the run's tasks are over
