"""Issue 17, item 1: the store is readable by name with xarray (Zarr's dimension_names and
CF-style attributes), lazily through dask, with the zarr arrays' values; a store made
before the names were declared gets them in a metadata-only version on the next run."""

import numpy as np
import pytest
import zarr

from pipeline.store import Store, set_dimension_names
from schemas.arrays import ARRAYS, coordinate_paths
from tests.test_bad_inputs import baseline, committed  # noqa: F401 (fixtures)

xr = pytest.importorskip("xarray")


def _open(st: Store, group: str):
    return xr.open_zarr(st.repo.readonly_session(branch="main").store, group=group, consolidated=False)


def test_xarray_opens_the_pairs_by_name_lazily_with_the_arrays_values(committed):  # noqa: F811
    st = committed.store
    ds = _open(st, "pairs")
    g = st.group()
    assert ds["onset_rgb"].dims == ("sample", "y", "x", "rgb")
    assert ds["onset_landmarks"].dims == ("sample", "landmark", "xy")
    assert ds["depth_diff"].dims == ("sample", "y", "x")
    assert ds.sizes["sample"] == g["pairs/onset_rgb"].shape[0] and ds.sizes["y"] == 310
    assert ds["rgb_diff"].chunks is not None  # dask-backed: nothing read yet
    for name in ("onset_rgb", "rgb_diff", "onset_landmarks", "depth_diff"):
        np.testing.assert_array_equal(ds[name].values, g[f"pairs/{name}"][:])
    a = ds["onset_depth"]
    assert a.attrs["units"] == ARRAYS["pairs/onset_depth"].units
    assert a.attrs["long_name"] == ARRAYS["pairs/onset_depth"].description
    man = st.table("manifest").sort_values("index")
    assert "sample_id" in ds.coords and ds["sample_id"].dims == ("sample",)  # samples labelled by id
    assert ds["sample_id"].values.tolist() == man["sample_id"].tolist()
    one = man[man["status"] == "ok"].iloc[-1]
    np.testing.assert_array_equal(  # selecting by id reads that manifest row's values
        ds["onset_rgb"].swap_dims(sample="sample_id").sel(sample_id=one["sample_id"]).values,
        g["pairs/onset_rgb"][int(one["index"])],
    )
    for group in ("micro", "fdp", "attrcl"):
        if any(n.startswith(group + "/") for n in ARRAYS if n in g):
            assert _open(st, group)["sample_id"].values.tolist() == man["sample_id"].tolist(), group
    tables = _open(st, "tables")  # the Parquet tables read as bytes arrays too
    assert tables["manifest"].dims == ("manifest_byte",) and tables["manifest"].dtype == np.uint8


def _strip_names(st: Store) -> None:
    """Make the store's head look like one written before the names were declared: no
    dimension_names, no long_name, no sample-id coordinates (same metadata, so nothing
    else differs)."""
    head = st.head()
    s = st.repo.writable_session("main")
    g = zarr.open_group(s.store, mode="a")
    for name in ARRAYS:
        if name in g:
            set_dimension_names(g[name], None)
            attrs = g[name].attrs.asdict()
            attrs.pop("long_name")
            attrs.pop("coordinates")
            g[name].attrs.put(attrs)
    for path in coordinate_paths(g):
        del g[path]
    s.commit("as before dimension names", metadata=st.repo.lookup_snapshot(head).metadata)


def test_an_old_store_gets_the_names_in_a_metadata_only_version(committed):  # noqa: F811
    st = committed.store
    _strip_names(st)
    with pytest.raises((KeyError, ValueError), match="dimension_names"):
        _open(st, "pairs")  # what a user met before
    old = st.group()
    before = {n: old[n][:] for n in ("pairs/onset_rgb", "pairs/depth_diff")}
    logs = []
    res = committed.run(log=logs.append)
    assert res.committed and res.recomputed == 0 and res.copied == 0
    assert any("lack their declared dimension names" in m for m in logs)
    ds = _open(Store(st.path, create=False), "pairs")
    assert ds["onset_rgb"].dims == ("sample", "y", "x", "rgb")
    assert ds["sample_id"].values.tolist() == st.table("manifest").sort_values("index")["sample_id"].tolist()
    for n, v in before.items():
        np.testing.assert_array_equal(ds[n.split("/")[1]].values, v)
    assert not committed.run().committed  # and then nothing is left to do
