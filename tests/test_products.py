"""Products as declared units (products/): the registry against the array specs, the
fingerprints derived from the declarations, the store refusing a changed shape, and the
import graph running one way."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr

import products
from pipeline.params import resolve
from pipeline.store import StoreLayoutError, ensure_arrays
from products import REGISTRY, closure, fingerprints, groups_for
from schemas.arrays import ARRAYS
from tests.conftest import REPO

ROW = {
    "sample_id": "d/s/c/1-3",
    "onset_path": "c/1.jpg",
    "apex_path": "c/3.jpg",
    "onset_depth_path": "d/1.png",
    "apex_depth_path": "d/3.png",
    "seq_paths": ["c/1.jpg", "c/2.jpg", "c/3.jpg"],
}
HASH = {p: f"h-{p}" for p in ["c/1.jpg", "c/2.jpg", "c/3.jpg", "d/1.png", "d/3.png"]}


def fps(params=None, row=ROW, has_depth=True, hashes=HASH):
    return fingerprints(row, params or resolve(None, "p"), has_depth, lambda p: hashes.get(p, "missing"))


def test_registry_matches_the_array_specs():
    assert list(REGISTRY) == ["crop", "depth", "flow", "micro", "clip"]
    assert {a.group for a in ARRAYS.values()} == set(REGISTRY)  # every array has its product
    for i, (name, p) in enumerate(REGISTRY.items()):
        assert p.arrays and all(a.group == name for a in p.arrays)
        assert all(list(REGISTRY).index(d) < i for d in p.depends)  # dependency order
    assert closure(["flow"]) == ("crop", "flow")
    assert groups_for(["dvscl"], True) == ("crop", "depth") and groups_for(["dvscl"], False) == ("crop",)
    assert groups_for(None, True) == tuple(REGISTRY)
    with pytest.raises(ValueError, match="unknown method"):
        groups_for(["nope"], True)


def test_a_fingerprint_follows_exactly_what_its_product_declares():
    base = fps()
    assert all(isinstance(v, str) and len(v) == 32 for v in base.values())
    p = resolve({"farneback": {"levels": 4}}, "p")
    got = fps(p)
    # Farnebäck is declared by flow and clip (clip's TIM flow uses it: its old fingerprint missed it)
    assert {k for k in base if base[k] != got[k]} == {"flow", "clip"}
    got = fps(resolve({"depth": {"window": 7}}, "p"))
    assert {k for k in base if base[k] != got[k]} == {"depth"}
    # an input file changed: its product and every product built on it
    got = fps(hashes={**HASH, "c/1.jpg": "other"})
    assert {k for k in base if base[k] != got[k]} == set(REGISTRY)
    got = fps(hashes={**HASH, "c/2.jpg": "other"})  # a middle frame: the clip only
    assert {k for k in base if base[k] != got[k]} == {"clip"}
    # no depth frames -> no depth product
    assert fps(has_depth=False)["depth"] is None and fps(row={**ROW, "onset_depth_path": None})["depth"] is None


def test_a_changed_declared_size_changes_the_fingerprints(monkeypatch):
    """The crop size lives in the array specs: change it and the crop fingerprint (and all
    built on it) changes by construction."""
    base = fps()
    spec = ARRAYS["pairs/onset_rgb"]
    monkeypatch.setitem(ARRAYS, "pairs/onset_rgb", dataclasses.replace(spec, shape=(320, 320, 3)))
    got = fps()
    assert {k for k in base if base[k] != got[k]} == set(REGISTRY)


def test_a_learned_magnifier_file_is_part_of_the_micro_fingerprint(tmp_path):
    w = tmp_path / "magnet.pth"
    p = resolve({"magnify": {"method": "learned", "weights": str(w)}}, "p")
    a = fingerprints(ROW, p, True, lambda x: "A" if x == str(w) else HASH.get(x, "missing"))
    b = fingerprints(ROW, p, True, lambda x: "B" if x == str(w) else HASH.get(x, "missing"))
    assert a["micro"] != b["micro"] and a["flow"] == b["flow"]
    assert REGISTRY["micro"].gpu(p) and not REGISTRY["micro"].gpu(resolve(None, "p"))


def test_the_store_refuses_an_array_of_another_declared_shape(monkeypatch):
    g = zarr.open_group(zarr.storage.MemoryStore(), mode="a")
    ensure_arrays(g, ["pairs/gray_diff"], 4, {})
    assert g["pairs/gray_diff"].shape == (4, 310, 310)
    spec = ARRAYS["pairs/gray_diff"]
    monkeypatch.setitem(ARRAYS, "pairs/gray_diff", dataclasses.replace(spec, shape=(320, 320)))
    with pytest.raises(
        StoreLayoutError,
        match=r"store array pairs/gray_diff holds per-sample shape \(310, 310\) int16, "
        r"but schemas/arrays.py now declares \(320, 320\) int16",
    ):
        ensure_arrays(g, ["pairs/gray_diff"], 4, {})
    monkeypatch.setitem(ARRAYS, "pairs/gray_diff", dataclasses.replace(spec, dtype="int32"))
    with pytest.raises(StoreLayoutError, match="now declares \\(310, 310\\) int32"):
        ensure_arrays(g, ["pairs/gray_diff"], 4, {})


def test_a_product_computes_from_the_context_alone():
    """The products read frames only through the context: a hand-made context with an
    in-memory face runs crop -> flow and gives the crop's arrays at the declared shapes."""
    from pipeline.face_models import landmark_backend_for
    from pipeline.tasks import flows_now
    from tests.conftest import video_frames

    face = video_frames("single_face.mp4", [0])[0]
    frames = {"c/1.jpg": face, "c/3.jpg": face}
    ctx = products.Context(
        row=ROW,
        params=resolve(None, "p"),
        read_rgb=frames.__getitem__,
        read_depth=lambda rel: np.full(face.shape[:2], 500, np.uint16),
        landmarks=lambda fp, img: landmark_backend_for(fp)(img),
        load_model=None,
    )
    out, pending = {}, []
    for name in ("crop", "depth", "flow"):
        res = REGISTRY[name].compute(ctx)
        pending += res.pop(products.base.PENDING, [])
        out.update(res)
    # the flow product leaves its TV-L1 flow to the engine: one pending pair, the two crops
    assert [pf.timing for pf in pending] == ["tvl1_ms"] and pending[0].src.shape == (310, 310, 3)
    np.testing.assert_array_equal(pending[0].src, out["pairs/onset_rgb"])
    out.update(flows_now(pending, ctx.params["tvl1"], ctx.timings))
    for a in out:
        assert out[a].shape == ARRAYS[a].shape and str(out[a].dtype) == ARRAYS[a].dtype, a
    assert not out["pairs/rgb_diff"].any() and np.abs(out["pairs/flow_tvl1"].astype(np.float32)).max() < 0.05
    assert ctx.box is not None and ctx.landmark_backend == "dlib"


LAYERS = ["schemas", "stages", "products", "pipeline", "training", "mepipe"]


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_no_floor_imports_anything_above_it(layer):
    """schemas <- stages <- products <- pipeline <- training, and the CLI (mepipe/) above
    both: no module imports upward (lazy imports inside functions included)."""
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    files = sorted((REPO / layer).rglob("*.py"))
    assert files
    for f in files:
        bad = _imports(f) & above
        assert not bad, f"{f.relative_to(REPO)} imports {sorted(bad)}"


def test_the_cli_is_the_one_room_that_knows_engine_and_training():
    assert {"pipeline", "training"} <= _imports(REPO / "mepipe" / "cli.py")
    assert not (REPO / "pipeline" / "cli.py").exists()


def test_the_import_check_sees_an_upward_import(tmp_path):
    """The graph check can fail: a pipeline module importing training is reported."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from training.registry import get_method\n")
    assert _imports(f) & set(LAYERS[LAYERS.index("pipeline") + 1 :]) == {"training"}


def test_the_tvl1_backend_is_in_the_flow_fingerprints_and_opencv_keeps_the_old_ones():
    """Issue 18, point 3: torch's flows differ slightly from OpenCV's, so the backend is in
    the fingerprint of the products that run TV-L1 (flow, micro) and of no other; OpenCV,
    the default, is left out, so a store made before the backend existed is not recomputed."""
    base = fps()
    before = resolve(None, "p")
    del before["tvl1"]["backend"]  # the parameters as stores were fingerprinted before
    assert fps(before) == base
    got = fps(resolve({"tvl1": {"backend": "torch"}}, "p"))
    assert {k for k in base if base[k] != got[k]} == {"flow", "micro"}


def test_auto_resolves_to_the_backend_the_workers_can_run(monkeypatch):
    import torch

    from pipeline.cluster import gpu_resources
    from pipeline.params import ParamError, resolve_flow_backend, workers_have_gpu
    from pipeline.tasks import uses_gpu

    auto = resolve({"tvl1": {"backend": "auto"}}, "p")
    assert resolve_flow_backend(auto, gpu=False)["tvl1"]["backend"] == "opencv"
    assert resolve_flow_backend(auto, gpu=True)["tvl1"]["backend"] == "torch"
    assert auto["tvl1"]["backend"] == "auto"  # the catalog's parameters are not changed
    assert workers_have_gpu({"kind": "slurm", "gpus": 1}) and not workers_have_gpu({"kind": "slurm"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert workers_have_gpu(None) and workers_have_gpu({"kind": "local"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not workers_have_gpu(None)
    # a torch flow task asks for a GPU worker where the profile declares GPUs; crops alone never do
    torch_p = resolve({"tvl1": {"backend": "torch"}}, "p")
    assert uses_gpu(("crop", "flow"), torch_p) and not uses_gpu(("crop", "depth"), torch_p)
    assert not uses_gpu(("crop", "flow", "micro"), resolve(None, "p"))
    assert gpu_resources({"kind": "slurm", "gpus": 1}, True) == {"GPU": 1}
    with pytest.raises(ParamError, match=r"p\.tvl1\.backend: 'cuda' is not one of"):
        resolve({"tvl1": {"backend": "cuda"}}, "p")
