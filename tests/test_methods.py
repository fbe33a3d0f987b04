"""Methods as registered units: the registry against the feeds, the run-folder names of
existing runs, the CLI's lookup, the feed Datasets' sample filter (the feed's status, not
manifest columns named in training/) and the feed cache folder as an argument."""

import ast
import inspect
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from schemas.feeds import FEEDS
from tests.fake_store import FakeStore
from training.registry import REGISTRY, UnknownMethod, cli_options, get_method, train

REPO = Path(__file__).resolve().parent.parent


def test_every_feed_is_a_registered_method_and_back():
    assert set(REGISTRY) == set(FEEDS)
    for name, m in REGISTRY.items():
        assert m.feed is FEEDS[name] and m.seed == FEEDS[name].seed
        assert m.dataset_class().method == name
        assert set(m.configs) >= {"tiny", "paper"}


def test_every_trainer_takes_its_declared_options_and_the_cache_folder():
    for m in REGISTRY.values():
        params = inspect.signature(m.train_function()).parameters
        assert list(params)[:4] == ["store_path", "scheme", "out", "config"], m.name
        for name in [o.name for o in m.options] + ["cache_dir", "log", "progress"] + ["adapter"] * m.takes_adapter:
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (m.name, name)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(UnknownMethod) as e:
        get_method("dvscll")
    assert str(e.value) == "method 'dvscll': unknown; known: attrcl, dvscl, fdp, microauclip, selfme"


def test_run_folder_names_are_those_of_existing_runs():
    tags = {name: m.tag("tiny") for name, m in REGISTRY.items()}
    assert tags == {
        "dvscl": "dvscl-tiny-depth",
        "selfme": "selfme-tiny-learned",
        "attrcl": "attrcl-tiny-split",
        "fdp": "fdp-tiny",
        "microauclip": "microauclip-tiny",
    }
    assert get_method("dvscl").tag("paper", {"view": "gray", "weights": "r18.pth"}) == "dvscl-paper-gray"
    assert get_method("selfme").tag("tiny", {"motion": "tvl1"}) == "selfme-tiny-tvl1"
    assert get_method("attrcl").tag("tiny", {"protocol": "loso", "text_model": ""}) == "attrcl-tiny-loso"


def test_options_resolve_to_defaults_and_refuse_what_a_method_does_not_take():
    m = get_method("dvscl")
    assert m.resolve({"weights": ""}) == {"view": "depth", "weights": None}
    with pytest.raises(ValueError, match="takes no option \\['motion'\\]"):
        m.resolve({"motion": "tvl1"})
    with pytest.raises(ValueError, match="--view 'rgb': not one of"):
        m.resolve({"view": "rgb"})
    flags = {o.flag: h for o, h in cli_options()}
    shared = {"--view", "--weights", "--motion", "--protocol", "--text-model", "--vgg-weights", "--motion-weights"}
    assert set(flags) == shared | {"--aus", "--alpha", "--beta"}  # microauclip's overrides of its paper's settings
    assert all(f"{m}:" in flags["--weights"] for m in ("dvscl", "microauclip", "selfme"))


def test_the_registry_imports_no_torch():
    code = "import sys, training.registry, mepipe.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_train_passes_options_and_cache_dir_to_the_trainer(monkeypatch, tmp_path):
    import training.selfme.train as sm

    got = {}
    monkeypatch.setattr(sm, "train_selfme", lambda *a, **kw: got.update(args=a, kw=kw) or {"ok": 1})
    assert train("selfme", "st", {"a": []}, tmp_path, "paper", {"motion": "tvl1"}, cache_dir=tmp_path / "c") == {
        "ok": 1
    }
    assert got["args"] == ("st", {"a": []}, tmp_path, "paper")
    assert got["kw"]["cache_dir"] == tmp_path / "c" and got["kw"]["motion"] == "tvl1" and got["kw"]["weights"] is None
    assert got["kw"]["motion_weights"] is None  # the option reaches the trainer (None: not given)
    train("selfme", "st", {}, tmp_path, "paper", adapter="samm")
    assert "adapter" not in got["kw"]  # only a method that picks settings by the dataset takes it
    with pytest.raises(ValueError, match="config 'huge' of selfme: unknown; known: tiny, paper"):
        train("selfme", "st", {}, tmp_path, "huge")


def test_every_dataset_a_trainer_builds_gets_the_cache_folder():
    for m in REGISTRY.values():
        path = REPO / (m.trainer.split(":")[0].replace(".", "/") + ".py")
        calls = [
            n
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.endswith("Dataset")
        ]
        assert calls, m.name
        for c in calls:
            assert any(k.arg == "cache_dir" and ast.unparse(k.value) == "cache_dir" for k in c.keywords), (
                m.name,
                ast.unparse(c),
            )


def test_training_names_no_fingerprint_column_and_reads_no_cache_variable():
    for f in sorted((REPO / "training").rglob("*.py")):
        text = f.read_text()
        assert "fp_" not in text and "MEPIPE_FEED_CACHE" not in text, f


def test_cli_unknown_method_is_an_error_listing_the_known(capsys):
    from mepipe.cli import main

    assert main(["train", "--method", "nope"]) == 2
    assert (
        capsys.readouterr().err.strip() == "error: METHOD=nope: unknown; known: attrcl, dvscl, fdp, microauclip, selfme"
    )


def test_cli_names_the_run_folder_and_passes_the_method_options(monkeypatch, tmp_path):
    import training.registry
    from mepipe.cli import main
    from pipeline.catalog import load_catalog
    from tests.conftest import write_catalog

    catalog = write_catalog(tmp_path)
    got = {}
    monkeypatch.setattr(training.registry, "train", lambda *a, **kw: got.update(args=a, kw=kw) or {"ok": 1})
    argv = ["--catalog", str(catalog), "train", "--dataset", "t", "--store", str(tmp_path / "st"), "--no-progress"]
    # the Makefile passes --view to every method: another method's option is ignored
    assert main(argv + ["--method", "selfme", "--motion", "tvl1", "--view", "depth", "--cache-dir", "C"]) == 0
    cat = load_catalog(catalog)
    method, store, scheme, out, config, options = got["args"]
    assert (method, store, config, options) == (
        "selfme",
        str(tmp_path / "st"),
        "tiny",
        {"weights": "", "motion": "tvl1", "vgg_weights": "", "motion_weights": ""},
    )
    assert out == cat.runs_root.parent / "train" / "t" / "selfme-tiny-tvl1" and scheme == cat.dataset("t").scheme
    assert got["kw"] == {
        "cache_dir": "C",
        "progress": False,
        "device": None,
        "precision": None,
        "adapter": "casme3_part_a",
    }
    monkeypatch.delenv("MEPIPE_FEED_CACHE", raising=False)
    assert (
        main(
            argv
            + ["--method", "dvscl", "--view", "gray", "--config", "paper", "--device", "cuda:1", "--precision", "bf16"]
        )
        == 0
    )
    assert got["kw"]["precision"] == "bf16"
    assert got["args"][3].name == "dvscl-paper-gray" and got["kw"]["cache_dir"] is None
    assert got["kw"]["device"] == "cuda:1"


def test_the_reading_code_the_dataset_card_prints_imports():
    """The card tells readers how to open a version: its import line must work."""
    from pipeline.card import READING

    code = READING[READING.index("```python") + 1 : READING.index("```", READING.index("```python") + 1)]
    imports = [line for line in code if line.startswith("from ")]
    assert imports == ["from training.dvscl.feed import DVSCLDataset"]
    namespace: dict = {}
    exec(imports[0], namespace)
    from training.dvscl.feed import DVSCLDataset

    assert namespace["DVSCLDataset"] is DVSCLDataset


# --- the feed Datasets' sample filter, on a stand-in store ----------------------------

N = 5


def _row(i, **kw):
    r = {
        "sample_id": f"s{i}",
        "subject": f"p{i % 2}",
        "emotion": "happy",
        "index": i,
        "status": "ok",
        "reason": None,
        "source": "labelled",
        "clip_start": 2 * i,
        "clip_len": 2,
        "onset": 0,
        "apex": 1,
        "au_list": [12],
    }
    r.update({f"fp_{g}": "f" * 32 for g in ("crop", "depth", "flow", "micro", "clip")})
    r.update(kw)
    return r


@pytest.fixture
def fake_store(monkeypatch):
    import pipeline.store
    from schemas.arrays import ARRAYS

    rng = np.random.default_rng(0)

    def arr(name, n=N):
        a = ARRAYS[name]
        return (rng.random((n, *a.shape)) * 100).astype(a.dtype)

    FakeStore.arrays = {
        "clips/frames72": arr("clips/frames72", 2 * N),
        "fdp/dynamic_image": arr("fdp/dynamic_image"),
        "pairs/rgb_diff": arr("pairs/rgb_diff"),
        "pairs/gray_diff": arr("pairs/gray_diff"),
        "pairs/depth_diff": arr("pairs/depth_diff"),
    }
    FakeStore.manifest = pd.DataFrame(
        [
            _row(0),
            _row(1, fp_clip=None, fp_depth=None),  # ok, but its clip and depth products were not written
            _row(2, status="excluded", reason="no_face"),
            _row(3, emotion="hapy"),
            _row(4, source="selected", emotion=None),
        ]
    )
    monkeypatch.setattr(pipeline.store, "Store", FakeStore)
    return {"happiness": ["happy"], "others": ["others"]}


def test_a_dataset_keeps_the_rows_whose_feed_arrays_are_written(fake_store):
    from training.dvscl.feed import DVSCLDataset
    from training.fdp.feed import FDPDataset

    fdp = FDPDataset("st", fake_store)
    assert [r["sample_id"] for r in fdp.rows] == ["s0"]
    assert fdp.skipped == [
        ("s1", "no clip for this sample"),
        ("s2", "excluded: no_face"),
        ("s3", "emotion 'hapy' not in the label scheme"),
    ]
    gray = DVSCLDataset("st", fake_store, view="gray", sources=("labelled", "selected"))
    assert [r["sample_id"] for r in gray.rows] == ["s0", "s1", "s4"] and list(gray.labels) == [0, 0, -1]
    depth = DVSCLDataset("st", fake_store, view="depth")
    assert [r["sample_id"] for r in depth.rows] == ["s0"] and ("s1", "no depth for this sample") in depth.skipped
    item = gray[1]
    np.testing.assert_allclose(item["view_diff"][0].numpy() * 255, FakeStore.arrays["pairs/gray_diff"][1])
    assert item["sample_id"] == "s1" and int(item["label"]) == 0


def test_the_cache_folder_is_an_argument_not_the_environment(fake_store, tmp_path, monkeypatch):
    from training.fdp.feed import FDPDataset

    monkeypatch.setenv("MEPIPE_FEED_CACHE", str(tmp_path / "env"))
    plain = FDPDataset("st", fake_store)
    ref = plain[0]["frames"]
    assert not (tmp_path / "env").exists()  # the variable is not read
    cached = pickle.loads(pickle.dumps(FDPDataset("st", fake_store, cache_dir=tmp_path / "c")))  # as in a worker
    assert np.array_equal(cached[0]["frames"].numpy(), ref.numpy())
    files = sorted(p.name for p in (tmp_path / "c" / "snap1").glob("*.npy"))
    assert files == ["clips__frames72.npy", "fdp__dynamic_image.npy"]


def test_train_takes_the_papers_scheme_or_the_one_asked_for(monkeypatch, tmp_path, capsys):
    """Issue 16, items 3-4: DVSCL trains CAS(ME)^3 on its paper's 4 classes by default;
    --scheme picks any scheme of the catalog (named in the run folder); unknown: exit 2."""
    import training.registry
    from mepipe.cli import main
    from tests.conftest import write_catalog

    catalog = write_catalog(tmp_path)
    text = catalog.read_text().replace(
        "label_schemes:\n",
        "label_schemes:\n  casme3_4:\n    negative: [anger, disgust, fear, sad]\n    positive: [happy]\n"
        "    surprise: [surprise]\n    others: [others]\n",
    )
    catalog.write_text(text)
    got = {}
    monkeypatch.setattr(training.registry, "train", lambda *a, **kw: got.update(args=a, kw=kw) or {"ok": 1})
    argv = ["--catalog", str(catalog), "train", "--dataset", "t", "--store", str(tmp_path / "st"), "--no-progress"]
    assert main(argv + ["--method", "dvscl"]) == 0
    assert list(got["args"][2]) == ["negative", "positive", "surprise", "others"]
    assert got["args"][3].name == "dvscl-tiny-depth-casme3_4"
    assert main(argv + ["--method", "fdp"]) == 0  # no paper scheme declared: the dataset's
    assert list(got["args"][2])[:3] == ["happiness", "disgust", "surprise"] and got["args"][3].name == "fdp-tiny"
    assert main(argv + ["--method", "fdp", "--scheme", "casme3_4"]) == 0
    assert got["args"][3].name == "fdp-tiny-casme3_4"
    capsys.readouterr()
    assert main(argv + ["--method", "fdp", "--scheme", "nope"]) == 2
    assert "error: --scheme nope: unknown; the catalog has casme3_4, casme3_7" in capsys.readouterr().err


def test_the_papers_schemes_are_in_the_shipped_catalog():
    """Each declared paper scheme exists in catalog.yaml with the paper's classes."""
    from pipeline.catalog import load_catalog
    from tests.conftest import REPO

    cat = load_catalog(REPO / "catalog.yaml")
    want = {
        ("dvscl", "casme3_part_a"): ["negative", "positive", "surprise", "others"],  # seed 000 sec. 5.4.4
        ("attrcl", "casme2"): ["happiness", "disgust", "repression", "surprise", "sadness"],  # seed 002 IV-A
        ("attrcl", "mmew"): ["happiness", "disgust", "surprise", "sadness", "fear", "anger"],
    }
    for (name, adapter), classes in want.items():
        scheme = get_method(name).scheme_for(adapter, "none")
        assert list(cat.label_schemes[scheme]) == classes, (name, adapter)
    adapters = {d.adapter for d in cat.datasets.values()}
    for m in ("dvscl", "attrcl"):
        assert set(get_method(m).schemes) <= adapters
