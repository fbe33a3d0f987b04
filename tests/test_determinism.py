"""Determinism: the demo dataset is bit-identical wherever the same library versions
generate it, and two runs of the whole pipeline from scratch (every product group, 1 vs
2 workers) give bit-identical arrays and tables."""

import pytest

from pipeline.catalog import load_catalog
from pipeline.demo import EXPECTED, generate, library_versions, tree_digest
from pipeline.runner import run
from pipeline.store import Store
from schemas.arrays import ARRAYS
from schemas.tables import TABLES
from tests.conftest import write_catalog

pytestmark = pytest.mark.slow


def test_demo_is_bit_identical(demo_source, tmp_path):
    again = generate(tmp_path / "casme3", log=lambda *a: None)
    assert tree_digest(again) == tree_digest(demo_source)
    libs = library_versions()
    if libs != {k: v for k, v in EXPECTED.items() if k != "digest"}:
        pytest.skip(f"library versions {libs} differ from those the expected digest was made with")
    assert tree_digest(demo_source) == EXPECTED["digest"]  # the same bytes as on the machine that made it


def test_two_runs_from_scratch_are_bit_identical(small_demo_source, tmp_path, monkeypatch):
    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(small_demo_source))
    stores = []
    for workers in (1, 2):
        d = tmp_path / f"w{workers}"
        d.mkdir()
        cat = load_catalog(write_catalog(d))
        res = run(cat, cat.dataset("t"), workers=workers, log=lambda *a: None, progress=False)
        assert res.committed and res.recomputed == 7
        stores.append(Store(cat.store_root / "t", create=False))
    a, b = (s.group() for s in stores)
    compared = 0
    for name in ARRAYS:
        assert (name in a) == (name in b), name
        if name in a:
            x, y = a[name][:], b[name][:]
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
            compared += 1
    assert compared == len(ARRAYS)  # every product group was compared
    for name in TABLES:
        ta, tb = stores[0].table(name), stores[1].table(name)
        assert (ta is None) == (tb is None), name
        if ta is not None:
            assert ta.equals(tb), name
            # and the stored Parquet bytes themselves
            assert a[f"tables/{name}"].attrs["sha256"] == b[f"tables/{name}"].attrs["sha256"], name
