"""Issue 18, point 3: `params.tvl1.backend` (opencv | torch | auto) on a real store. The
backend is part of the fingerprint of the products that run TV-L1 (flow, micro) and of no
other, so switching recomputes exactly those; it is recorded in the version's provenance
and card; `auto` resolves to what the workers have (OpenCV on a machine without a GPU,
which leaves an OpenCV store up to date)."""

import numpy as np
import pytest
import torch

from pipeline.catalog import load_catalog
from pipeline.runner import run
from pipeline.store import Store
from pipeline.versions import card
from stages.flow_torch import tvl1_torch
from tests.test_bad_inputs import baseline, committed  # noqa: F401 (fixtures)
from tests.test_flow_torch import moved, one_thread, texture  # noqa: F401 (one_thread: a fixture)

pytestmark = pytest.mark.slow
FLOWS = ("pairs/flow_tvl1", "micro/flow224")


def _run_with(c, backend: str | None, logs: list):
    cat_path = c.root.parent / "catalog.yaml"
    text = cat_path.read_text().split("    params:\n")[0]
    if backend:
        text += f"    params:\n      tvl1: {{backend: {backend}}}\n"
    cat_path.write_text(text)
    cat = load_catalog(cat_path)
    return run(cat, cat.dataset("t"), workers=1, log=logs.append, progress=False, methods=["selfme", "microauclip"])


def test_switching_the_tvl1_backend_recomputes_the_flows_and_only_them(committed):  # noqa: F811
    c, logs = committed, []
    first = _run_with(c, None, logs)  # OpenCV (the default): flows, clips and the micro pair added
    assert first.committed and (first.manifest["status"] == "ok").all()
    st = Store(c.store.path, create=False)
    g = st.group()
    opencv = {a: g[a][:].astype(np.float32) for a in FLOWS}
    kept = {a: g[a][:] for a in ("pairs/onset_rgb", "pairs/apex_rgb", "clips/frames72", "pairs/flow_farneback")}

    if not torch.cuda.is_available():  # auto, no GPU: OpenCV, the same fingerprints
        again = _run_with(c, "auto", logs)
        assert not again.committed and any("tvl1 backend auto: opencv" in m for m in logs)

    res = _run_with(c, "torch", logs)
    assert res.committed and res.recomputed == len(res.manifest)
    assert "face_ms" not in res.timings and {"tvl1_ms", "micro_tvl1_ms"} <= set(res.timings)
    g = st.group()
    for a, v in kept.items():  # crops, clips and Farnebäck were not recomputed
        np.testing.assert_array_equal(g[a][:], v, err_msg=a)
    on, ap = g["pairs/onset_rgb"][:], g["pairs/apex_rgb"][:]
    np.testing.assert_array_equal(g["pairs/flow_tvl1"][:], tvl1_torch(on, ap).astype(np.float16))
    for a in FLOWS:  # within point 2's tolerance of OpenCV's flows
        epe = np.linalg.norm(g[a][:].astype(np.float32) - opencv[a], axis=-1)
        assert epe.mean() <= 0.05 and np.percentile(epe, 99) <= 0.5, (a, epe.mean(), np.percentile(epe, 99))
    meta = st.versions()[0]["metadata"]
    assert meta["params"]["tvl1"]["backend"] == "torch"
    assert '"backend": "torch"' in card(st, None)

    back = _run_with(c, "opencv", logs)  # and back: OpenCV's flows again, bit for bit
    assert back.committed
    g = st.group()
    for a in FLOWS:
        np.testing.assert_array_equal(g[a][:].astype(np.float32), opencv[a], err_msg=a)


def test_flows_deferred_to_a_gpu_worker_are_computed_per_shard_in_batches(committed, monkeypatch, tmp_path):  # noqa: F811
    """Issue 18, point 4: with the torch backend and GPU workers, the clip tasks leave their
    TV-L1 flows pending and one task per write shard computes them in a batch per image
    size. Here the driver is told its workers have a GPU (they compute on the CPU); what
    is stored equals the flows computed pair by pair."""
    import pipeline.execute
    from pipeline.tasks import process_clip

    monkeypatch.setattr(pipeline.execute, "workers_have_gpu", lambda profile: True)
    monkeypatch.setenv("MEPIPE_TRACE", str(tmp_path))
    c = committed
    res = _run_with(c, "torch", [])
    assert res.committed and (res.manifest["status"] == "ok").all()
    batches = [x.split()[2] for f in tmp_path.glob("*.log") for x in f.read_text().splitlines() if "flow_batch" in x]
    n = len(res.manifest)
    assert sorted(batches) == sorted([f"{n}x224", f"{n}x310"]), batches  # one shard: one batch per size
    g = Store(c.store.path, create=False).group()
    on, ap = g["pairs/onset_rgb"][:], g["pairs/apex_rgb"][:]
    np.testing.assert_array_equal(g["pairs/flow_tvl1"][:], tvl1_torch(on, ap).astype(np.float16))
    cat = load_catalog(c.root.parent / "catalog.yaml")
    ds = cat.dataset("t")
    for r in res.manifest.to_dict("records"):  # the micro flow: the clip task's own, pair by pair
        box = (r["crop_x0"], r["crop_y0"], r["crop_x1"], r["crop_y1"])
        one = process_clip(r, str(ds.root()), ds.params, ("micro",), box, True, r["eye_angle"])
        np.testing.assert_array_equal(g["micro/flow224"][r["index"]], one["arrays"]["micro/flow224"])


def _shifted(size: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and the same moved right by `shift` px (uint8 gray)."""
    img = texture(size, seed)
    return img, moved(img, np.tile(np.float32([shift, 0]), (size, size, 1)))


def test_a_shard_batch_gives_each_sample_its_own_flows_and_leaves_the_clip_results_alone():
    from pipeline.tasks import excluded_result, flows_now, shard_flows
    from products.base import PENDING, PendingFlow
    from products.flow import tvl1_arrays
    from products.micro import flow224_arrays
    from stages.flow import TVL1_DEFAULTS

    params = {**TVL1_DEFAULTS, "backend": "torch", "nscales": 2, "warps": 2, "innnerIterations": 10}
    pairs = {i: (_shifted(64, 0.5 + i, 2 * i), _shifted(48, 1.0 - 0.3 * i, 2 * i + 1)) for i in range(2)}
    results = {
        i: {
            "status": "ok",
            "timings": {"crop_ms": 1.0},
            "arrays": {
                "pairs/onset_rgb": big[0],
                PENDING: [PendingFlow(*big, tvl1_arrays, "tvl1_ms"), PendingFlow(*small, flow224_arrays, "m_ms")],
            },
        }
        for i, (big, small) in pairs.items()
    }
    results[2] = excluded_result("crop", "no_face", "no face in x.jpg", {})
    out = shard_flows(results, params)
    assert all(PENDING in results[i]["arrays"] for i in (0, 1))  # the workers' stored results unchanged
    assert out[2] == results[2]
    for i in (0, 1):
        want = flows_now(results[i]["arrays"][PENDING], params, {})
        assert set(out[i]["arrays"]) == {"pairs/onset_rgb", *want}
        for k, v in want.items():
            np.testing.assert_array_equal(out[i]["arrays"][k], v, err_msg=k)
        assert {"crop_ms", "tvl1_ms", "m_ms"} <= set(out[i]["timings"])
    flow = out[1]["arrays"]["pairs/flow_tvl1"].astype(np.float32)  # and they are flows of the shift
    assert abs(np.median(flow[8:-8, 8:-8, 0]) - 1.5) < 0.1 and abs(np.median(flow[8:-8, 8:-8, 1])) < 0.1


def test_the_torch_tvl1_and_the_shard_batch_keep_every_tensor_on_the_gpu(monkeypatch):
    """Device placement without a GPU (tests/fake_cuda.py): on a CUDA worker every tensor of
    the flow stays on the device (an op mixing devices raises naming its line), and the
    flows are those of the CPU run."""
    from pipeline.tasks import flows_now, shard_flows
    from products.base import PENDING, PendingFlow
    from products.flow import tvl1_arrays
    from products.micro import EulerianPair, flow224_arrays
    from stages.flow import TVL1_DEFAULTS
    from tests.fake_cuda import FakeCuda

    a, b = _shifted(40, 0.7, 5)
    fast = {"nscales": 2, "warps": 2, "innnerIterations": 5, "outerIterations": 2}
    cpu = tvl1_torch(a[None], b[None], **fast)
    with FakeCuda() as fc:
        on_gpu = tvl1_torch(torch.from_numpy(a[None]).to("cuda"), torch.from_numpy(b[None]).to("cuda"), **fast)
        assert on_gpu.device.type == "cuda" and fc.checked > 100
        np.testing.assert_array_equal(on_gpu.cpu().numpy(), cpu)
    # and seed 004's pair, magnified on the device; both pairs RGB of one size, so only the
    # prep keeps them apart (the gray -> RGB copies have the same gray, so the same flow)
    rgb = [np.repeat(x[..., None], 3, -1) for x in (a, b)]
    micro = PendingFlow(*rgb, flow224_arrays, "micro_tvl1_ms", EulerianPair(3.0, 3, 32))
    pending = [PendingFlow(*rgb, tvl1_arrays, "tvl1_ms"), micro]
    res = {0: {"status": "ok", "timings": {}, "arrays": {PENDING: pending}}}
    params = {**TVL1_DEFAULTS, **fast, "backend": "torch"}
    want = flows_now([micro], params, {})["micro/flow224"]  # the clip task's, on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what a GPU worker's shard_flows sees
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    with FakeCuda():
        out = shard_flows(res, params)
    np.testing.assert_array_equal(out[0]["arrays"]["pairs/flow_tvl1"], cpu[0].astype(np.float16))
    np.testing.assert_array_equal(out[0]["arrays"]["micro/flow224"], want)


def test_a_shard_batch_prepares_seed_004s_pairs_as_the_clip_task_does():
    """Issue 18 point 4: the micro product's pending flow carries its 310 crops and an
    EulerianPair; the shard batch magnifies and shrinks them in torch (on the GPU there)
    before the flow, and stores what the clip task's numpy/OpenCV path stores."""
    from pipeline.tasks import flows_now, shard_flows
    from products.base import PENDING, PendingFlow
    from products.micro import EulerianPair, flow224_arrays
    from stages.flow import TVL1_DEFAULTS

    params = {**TVL1_DEFAULTS, "backend": "torch", "nscales": 2, "warps": 2, "innnerIterations": 10}
    prep = EulerianPair(3.0, 3, 48)
    results = {}
    for i in range(3):
        a, b = _shifted(64, 0.3 * (i + 1), 7 + i)
        rgb = [np.repeat(x[..., None], 3, -1) for x in (a, b)]
        results[i] = {
            "status": "ok",
            "timings": {},
            "arrays": {PENDING: [PendingFlow(*rgb, flow224_arrays, "m_ms", prep)]},
        }
    out = shard_flows(results, params)
    for i in range(3):
        timings: dict = {}
        want = flows_now(results[i]["arrays"][PENDING], params, timings)
        np.testing.assert_array_equal(out[i]["arrays"]["micro/flow224"], want["micro/flow224"], err_msg=f"sample {i}")
        assert out[i]["arrays"]["micro/flow224"].shape == (48, 48, 2)
        assert {"m_ms", "magnify_ms"} <= set(out[i]["timings"]) and {"m_ms", "magnify_ms"} <= set(timings)
