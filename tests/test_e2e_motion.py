"""Motion products end to end on the demo's labelled clips (real faces, planted motion):
every feed exists for every clip, each equals an independent recomputation from the
stored crops/clips, METHODS= limits the work, and the torch Dataset of each method
returns the shapes its method card states."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.catalog import load_catalog
from pipeline.io import read_rgb
from pipeline.runner import run
from pipeline.store import Store
from schemas.feeds import FEEDS
from stages.align import warp_face
from stages.flow import farneback, tvl1
from stages.temporal import dynamic_image, tim_interpolate, uniform_indices

pytestmark = pytest.mark.slow
QUIET = dict(log=lambda *a: None, progress=False)
FAST_TVL1 = "tvl1: {nscales: 3, warps: 2, innnerIterations: 10, outerIterations: 2}\n"


def test_all_feeds(dataset_copy):
    root, catalog = dataset_copy
    catalog.write_text(catalog.read_text() + "    params:\n      " + FAST_TVL1)
    cat = load_catalog(catalog)
    ds = cat.dataset("t")
    # only FDP first: crop + clip products, no flow
    res = run(cat, ds, workers=2, methods=["fdp"], **QUIET)
    st = Store(cat.store_root / "t", create=False)
    g = st.group()
    assert "clips/frames72" in g and "fdp/dynamic_image" in g
    assert "pairs/flow_tvl1" not in g and "micro/flow224" not in g and "pairs/depth_diff" not in g
    assert set(res.timings) & {"tvl1_ms", "micro_tvl1_ms"} == set()

    # then everything: only the missing groups are computed (no face detection on onsets again)
    res = run(cat, ds, workers=2, **QUIET)
    assert "face_ms" not in res.timings and "tvl1_ms" in res.timings
    man = res.manifest
    g = st.group()
    assert (man["status"] == "ok").all() and len(man) == 20
    for m, feed in FEEDS.items():
        for a in feed.arrays:
            assert a in g, (m, a)
    p = ds.params
    for r in man.itertuples():
        i = r.index
        on, ap = g["pairs/onset_rgb"][i], g["pairs/apex_rgb"][i]
        # flows = a direct call on the stored crops (float16 storage)
        np.testing.assert_array_equal(g["pairs/flow_tvl1"][i], tvl1(on, ap, **p["tvl1"]).astype(np.float16))
        np.testing.assert_array_equal(
            g["pairs/flow_farneback"][i], farneback(on, ap, **p["farneback"]).astype(np.float16)
        )
        # ragged clip rows = the aligned frames onset..offset, recomputed from the files
        assert r.clip_len == len(r.seq_paths) == r.offset - r.onset + 1
        clip = g["clips/frames72"][r.clip_start : r.clip_start + r.clip_len]
        box = (r.crop_x0, r.crop_y0, r.crop_x1, r.crop_y1)
        np.testing.assert_array_equal(clip[3], warp_face(read_rgb(root / r.seq_paths[3]), r.eye_angle, box, 72))
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip[uniform_indices(len(clip), 8)]])
        di = g["fdp/dynamic_image"][i].astype(np.float32)
        assert np.abs(di - dynamic_image(gray)).max() < 1e-3  # float16 storage
        tim = g["attrcl/rgb16"][i]
        f112 = np.stack([warp_face(read_rgb(root / s), r.eye_angle, box, 112) for s in r.seq_paths])
        np.testing.assert_array_equal(tim, tim_interpolate(f112, 16))
        np.testing.assert_array_equal(
            g["attrcl/flow16"][i][4], farneback(tim[4], tim[5], **p["farneback"]).astype(np.float16)
        )
        lm = g["micro/apex_landmarks224"][i][17:]  # the jaw line may touch the box edge
        assert (lm > 0).all() and (lm < 224).all()
    # the planted motion shows in the TV-L1 flow where the demo put it (brows vs mouth)
    lms = g["pairs/onset_landmarks"][:]
    for r in man.itertuples():
        mag = np.hypot(*g["pairs/flow_tvl1"][r.index].astype(np.float32).transpose(2, 0, 1))

        def at(idx):
            c = lms[r.index][list(idx)].mean(0).astype(int)
            return mag[c[1] - 8 : c[1] + 8, c[0] - 8 : c[0] + 8].mean()

        brow, mouth = at(range(17, 22)) + at(range(22, 27)), at([48]) + at([54])
        assert (brow > 2 * mouth) if r.emotion in ("surprise", "disgust") else (mouth > 2 * brow), r.sample_id

    # ragged regions of different write shards never share a ragged shard
    from schemas.arrays import RAGGED_SHARD, SHARD_SAMPLES

    for a, b in zip(man.itertuples(), man.iloc[1:].itertuples()):
        if a.index // SHARD_SAMPLES != b.index // SHARD_SAMPLES:
            assert (a.clip_start + a.clip_len - 1) // RAGGED_SHARD < b.clip_start // RAGGED_SHARD

    # nothing changed: nothing recomputed
    assert not run(cat, ds, workers=2, **QUIET).committed

    # the torch Dataset of each method returns the card's shapes
    from training.dvscl.feed import DVSCLDataset
    from training.registry import get_method

    want = {
        "fdp": {"frames": (8, 3, 64, 64), "dynamic_image": (1, 64, 64)},
        "attrcl": {"rgb": (3, 16, 112, 112), "flow": (2, 15, 112, 112)},
        "microauclip": {"flow": (2, 224, 224), "landmarks": (68, 2)},
        "selfme": {"pair": (2, 3, 72, 72), "flow": (2, 310, 310)},
    }
    for m, shapes in want.items():
        d = get_method(m).dataset_class()(cat.store_root / "t", ds.scheme, train=True)
        assert len(d) == 20
        item = d[3]
        for k, s in shapes.items():
            assert tuple(item[k].shape) == s, (m, k)
    SelfME = get_method("selfme").dataset_class()
    s1 = SelfME(cat.store_root / "t", ds.scheme)[2]["flow"]
    s2 = SelfME(cat.store_root / "t", ds.scheme, gamma=2.0)[2]["flow"]
    assert torch.equal(s2, 2 * s1) and s1.abs().max() > 0  # motion-field amplification at inference
    pd_ = DVSCLDataset(cat.store_root / "t", ds.scheme)
    assert tuple(pd_[0]["rgb_diff"].shape) == (3, 310, 310)

    # the local feed cache gives the same tensors as the store, fills once, and is keyed by
    # the snapshot (a memory map per array)
    cache = root.parent / "feed_cache"
    pc = DVSCLDataset(cat.store_root / "t", ds.scheme, cache_dir=cache)
    ids = [5, 0, 3, 3]
    for a, b in zip(pd_.__getitems__(ids), pc.__getitems__(ids)):
        assert torch.equal(a["rgb_diff"], b["rgb_diff"]) and torch.equal(a["view_diff"], b["view_diff"])
    files = sorted((cache / pd_.snapshot).glob("*.npy"))
    assert [f.name for f in files] == ["pairs__depth_diff.npy", "pairs__rgb_diff.npy"]
    stamp = {f: f.stat().st_mtime_ns for f in files}
    for m in ("fdp", "selfme"):
        kw = {"train": False}
        a, b = (
            get_method(m).dataset_class()(cat.store_root / "t", ds.scheme, **kw),
            get_method(m).dataset_class()(cat.store_root / "t", ds.scheme, cache_dir=cache, **kw),
        )
        for k in ("frames", "dynamic_image") if m == "fdp" else ("pair", "flow"):
            assert torch.equal(a[4][k], b[4][k]), (m, k)
    DVSCLDataset(cat.store_root / "t", ds.scheme, cache_dir=cache).__getitems__([1])
    assert all(f.stat().st_mtime_ns == t for f, t in stamp.items())  # not filled twice
    assert not list((cache / pd_.snapshot).glob("*.part"))

    # FDP trains end to end from the stored clips under LOSO (one epoch: wiring, not accuracy)
    from training.fdp import train as fdp_train

    fdp_train.CONFIGS["smoke"] = {**fdp_train.CONFIGS["tiny"], "epochs": 1}
    s = fdp_train.train_fdp(
        cat.store_root / "t", ds.scheme, root.parent / "fdp", "smoke", log=lambda *a: None, progress=False
    )
    assert s["folds"] == 3 and s["samples"] == 20 and s["train_samples_per_s"] > 0
    ck = torch.load(root.parent / "fdp" / "models" / "fold_000.pt", weights_only=True)
    assert "model" in ck

    # AttrCL trains end to end from the stored TIM clips + flow sequences (one run, one epoch)
    from training.attrcl import train as attrcl_train

    attrcl_train.CONFIGS["smoke"] = {**attrcl_train.CONFIGS["tiny"], "epochs": 1, "runs": 1}
    s = attrcl_train.train_attrcl(
        cat.store_root / "t", ds.scheme, root.parent / "attrcl", "smoke", log=lambda *a: None, progress=False
    )
    assert len(s["runs"]) == 1 and 0 <= s["Acc_mean"] <= 1

    # MicroAUCLIP: AU detection + emotion-label-free MER under LOSO from the stored 224 flows,
    # with CLIP weights from a local file (here: a saved random init)
    import open_clip

    from training.microauclip import train as mac

    w = root.parent / "clip.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), w)
    mac.CONFIGS["smoke"] = {**mac.CONFIGS["tiny"], "epochs": 1}
    msgs = []
    s = mac.train_microauclip(
        cat.store_root / "t", ds.scheme, root.parent / "mac", "smoke", log=msgs.append, progress=False, weights=str(w)
    )
    assert any("0 missing, 0 unexpected" in m for m in msgs)
    assert set(s["au_detection"]) >= {"AU1", "AU12", "mean_F1"} and s["emotion_label_free"]["n"] == 20

    # SelfME's classification stage (SCViT) on the stored TV-L1 motion
    from training.selfme import train as sm

    sm.CONFIGS["smoke"] = {**sm.CONFIGS["tiny"], "epochs": 1, "motion_epochs": 1, "motion_pairs": 16}
    s = sm.train_selfme(
        cat.store_root / "t",
        ds.scheme,
        root.parent / "selfme",
        "smoke",
        log=lambda *a: None,
        progress=False,
        motion="tvl1",
    )
    assert s["folds"] == 3 and s["samples"] == 20
    s = sm.train_selfme(
        cat.store_root / "t",
        ds.scheme,
        root.parent / "selfme-learned",
        "smoke",
        log=lambda *a: None,
        progress=False,
        motion="learned",
    )
    assert s["motion"] == "learned" and s["samples"] == 20
    every_method_trains_on_a_pretend_gpu(cat.store_root / "t", ds.scheme, root.parent / "fake_cuda")
    every_method_resumes_bit_for_bit(cat.store_root / "t", ds.scheme, root.parent / "resume")
    the_gpu_benchmark_runs_every_method_at_the_papers_shapes(cat.store_root / "t", ds.scheme, root.parent / "bench")


# one epoch (and the least of each method's other loops): enough to run every line of a
# training step, forward, loss, backward and optimiser, on the pretend device
ONE_STEP = {
    "dvscl": {"epochs": 1, "probe_epochs": 3},
    "selfme": {"epochs": 1, "motion_epochs": 1, "motion_pairs": 8},
    "attrcl": {"epochs": 1, "runs": 1},
    "fdp": {"epochs": 1},
    "microauclip": {"epochs": 1},
}


def every_method_trains_on_a_pretend_gpu(store, scheme, out):
    """Issue 16, item 1: each method's real trainer, with device="cuda", under a pretend
    CUDA device that makes every operation check its inputs' devices (tests/fake_cuda.py):
    a tensor left on the CPU (SelfME's thin-plate-spline parameters were) fails here as it
    would on the first step on a GPU."""
    import importlib

    from tests.fake_cuda import FakeCuda
    from training.registry import REGISTRY, get_method, train

    assert set(ONE_STEP) == set(REGISTRY)
    for name, small in ONE_STEP.items():
        configs = importlib.import_module(f"training.{name}.configs").CONFIGS
        with pytest.MonkeyPatch.context() as mp:
            for k, v in small.items():
                mp.setitem(configs["tiny"], k, v)
            with FakeCuda() as mode:
                options = {o.name: o.default for o in get_method(name).options}
                s = train(name, store, scheme, out / name, "tiny", options, progress=False, log=lambda *a: None,
                          device="cuda")  # fmt: skip
            assert s and mode.checked > 1000, (name, mode.checked)


# two epochs of each loop: a kill in the middle lands inside an epoch after a checkpoint
TWO_EPOCHS = {
    "dvscl": {"epochs": 2, "batch": 8},
    "selfme": {"epochs": 2, "motion_epochs": 2, "motion_pairs": 16},
    "attrcl": {"epochs": 2, "runs": 2, "batch": 4},
    "fdp": {"epochs": 2, "batch": 4},
    "microauclip": {"epochs": 2},
}


class Killed(Exception):
    pass


def every_method_resumes_bit_for_bit(store, scheme, out):
    """Issue 16, item 7: each method's real trainer, killed at its middle optimiser step
    (inside an epoch of some fold, or of pretraining / motion learning) and run again in
    the same folder, takes exactly the steps the uninterrupted run took from its last
    checkpoint on (every loss bit-equal: they depend on the weights, the batch order,
    the augmentations and dropout) and writes the same predictions."""
    import importlib

    from training.registry import REGISTRY, get_method, train

    assert set(TWO_EPOCHS) == set(REGISTRY)
    for name, small in TWO_EPOCHS.items():
        module = importlib.import_module(f"training.{name}.train")
        configs = importlib.import_module(f"training.{name}.configs").CONFIGS
        options = {o.name: o.default for o in get_method(name).options}

        def run(folder, losses, kill_at=None):
            def counted_step(opt, loss):
                if len(losses) == kill_at:
                    raise Killed
                losses.append(loss.item())
                real_step(opt, loss)

            with pytest.MonkeyPatch.context() as mp:
                for k, v in small.items():
                    mp.setitem(configs["tiny"], k, v)
                mp.setattr(module, "step", counted_step)
                return train(name, store, scheme, folder, "tiny", options, progress=False, log=lambda *a: None)

        real_step = module.step
        full: list[float] = []
        want = run(out / name / "full", full)
        first: list[float] = []
        with pytest.raises(Killed):  # one step into an epoch (with an even count of epochs the middle is a boundary)
            run(out / name / "killed", first, kill_at=len(full) // 2 + 1)
        resumed: list[float] = []
        got = run(out / name / "killed", resumed)
        assert first == full[: len(first)], name
        assert len(full) - len(first) < len(resumed), name  # killed inside an epoch: its first steps again
        assert len(resumed) < len(full), name  # finished epochs are not redone
        assert resumed == full[len(full) - len(resumed) :], name
        for part in ("folds", "runs"):
            for f in sorted((out / name / "full" / part).glob("*.parquet")):
                pd.testing.assert_frame_equal(
                    pd.read_parquet(f), pd.read_parquet(out / name / "killed" / part / f.name)
                )
        for key in ("UF1", "UAR", "Acc", "runs", "au_detection"):
            assert want.get(key) == got.get(key), (name, key)


def the_gpu_benchmark_runs_every_method_at_the_papers_shapes(store, scheme, out):
    """Issue 16, item 2: benchmarks/bench_gpu.py stays alive on a CPU: one timed step of
    every loop it measures, with the 'paper' configs (no DataLoader workers here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_gpu", Path(__file__).parent.parent / "benchmarks" / "bench_gpu.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for label, name, options in bench.ROWS:
        r = bench.measure(name, store, scheme, options, "paper", steps=1, warmup=0, workers=0, out=out / label)
        assert r["steps"] == 1 and r["samples_per_s"] > 0 and r["peak_mib"] > 0, label


def test_the_pretend_gpu_catches_a_tensor_left_on_the_cpu():
    """The device check can fail: the bug SelfME had (a CPU tensor meeting the model's)."""
    from tests.fake_cuda import DeviceMismatch, FakeCuda
    from training.selfme.motion_learner import TPS

    tps = TPS(2, generator=torch.Generator().manual_seed(0))
    with FakeCuda():
        z = torch.rand(2, 5, 2).to("cuda")
        assert tps(z).device.type == "cuda"  # the fixed TPS moves its parameters to z's device
        with pytest.raises(DeviceMismatch, match=r"aten\.add\.Tensor: inputs on \['cpu', 'cuda'\]"):
            z + torch.rand(2, 5, 2)
        conv = torch.nn.Conv2d(2, 2, 1).to("cuda")
        assert conv(torch.rand(1, 2, 4, 4).to("cuda")).device.type == "cuda"
        with pytest.raises(DeviceMismatch, match="convolution"):
            conv(torch.rand(1, 2, 4, 4))


def test_learned_magnifier_without_weights_is_a_clear_error(dataset_copy):
    from pipeline.tasks import MagnifierMissing

    root, catalog = dataset_copy
    catalog.write_text(
        catalog.read_text() + "    params:\n      magnify: {method: learned, weights: /nope/oh2018.pth}\n"
    )
    cat = load_catalog(catalog)
    with pytest.raises(MagnifierMissing, match="/nope/oh2018.pth.*nothing is downloaded"):
        run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert not (cat.store_root / "t").exists() or Store(cat.store_root / "t").table("manifest") is None


def test_learned_magnifier_from_a_local_state_dict(dataset_copy, tmp_path):
    """The network loads from a local file and runs in the pipeline (random weights here:
    no trained weights can be downloaded; the check is the loading and the wiring)."""
    from stages.magnet import MagNet, magnify_pair_learned

    torch.manual_seed(0)
    net = MagNet()
    w = tmp_path / "magnet.pth"
    torch.save(net.state_dict(), w)
    x = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert magnify_pair_learned(net, x, x, 3.0).shape == (64, 64, 3)
    root, catalog = dataset_copy
    catalog.write_text(
        catalog.read_text() + "    params:\n      " + FAST_TVL1 + f"      magnify: {{method: learned, weights: {w}}}\n"
    )
    cat = load_catalog(catalog)
    res = run(cat, cat.dataset("t"), workers=1, methods=["microauclip"], **QUIET)
    assert (res.manifest["status"] == "ok").all()
    assert Store(cat.store_root / "t").group()["micro/flow224"].shape == (20, 224, 224, 2)
    w.write_bytes(b"not a state dict")
    from pipeline.tasks import _MAGNETS, MagnifierMissing

    _MAGNETS.clear()
    with pytest.raises(MagnifierMissing, match="not a state_dict"):
        run(load_catalog(catalog), cat.dataset("t"), workers=1, methods=["microauclip"], **QUIET)
