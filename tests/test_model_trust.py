"""Model files from other labs are hostile until checked (issue 15, item 2): a .skops file
naming a type py-feat's AU classifier does not need is refused before anything is
loaded; pinned files must match models.lock unless the user trusts them; every torch
load in the code base is weights-only."""

from __future__ import annotations

import ast
import os

import pytest

from pipeline.model_trust import (
    SKOPS_TYPES,
    UntrustedModelFile,
    check_pinned,
    check_skops_types,
    read_lock,
)
from tests.conftest import REPO


def _hostile_skops(path):
    """A .skops file that would call os.system when loaded trusting what it names."""
    from skops.io import dump

    dump({"payload": os.system}, path)
    return path


def test_a_skops_file_naming_a_foreign_type_is_refused_naming_it(tmp_path):
    path = _hostile_skops(tmp_path / "xgb_au_classifier_v2.skops")
    with pytest.raises(UntrustedModelFile, match=r"names type\(s\) \['posix.system'\].*refused") as e:
        check_skops_types(path)
    assert str(path) in str(e.value)


def test_the_classifier_py_feat_dumps_passes(tmp_path):
    """A file dumped by py-feat's own wrapper class (as the published one) names only the
    allowed types."""
    from feat.au_detectors.StatLearning.SL_test import XGBClassifier as FeatXGB
    from skops.io import dump

    dump(FeatXGB(), tmp_path / "ok.skops")
    assert set(check_skops_types(tmp_path / "ok.skops")) <= SKOPS_TYPES


def test_pyfeat_preflight_refuses_a_hostile_models_folder(tmp_path):
    """The run's preflight (before py-feat builds its detector, which would trust every
    type) stops on the hostile classifier."""
    from pipeline.catalog import Dataset
    from pipeline.pyfeat_au import MODEL_FILES, repo_dir
    from pipeline.screening import pyfeat_check

    for repo, names in MODEL_FILES.items():
        snap = repo_dir(tmp_path, repo) / "snapshots" / ("0" * 40)
        snap.mkdir(parents=True)
        if repo == "py-feat/xgb_au":
            _hostile_skops(snap / names[0])
        else:
            (snap / names[0]).write_bytes(b"weights")
    ds = Dataset(
        name="t", adapter="casme3_part_a", root_env="", fps=30.0, modalities=["rgb"], annotation=None,
        frames_dir="", label_scheme="x", scheme={}, params={}, unlabelled={"pyfeat_models": str(tmp_path)},
    )  # fmt: skip
    with pytest.raises(UntrustedModelFile, match="posix.system"):
        pyfeat_check(ds)


def test_a_pinned_file_must_match_unless_trusted(tmp_path):
    lock = tmp_path / "models.lock"
    good, bad = tmp_path / "good.dat", tmp_path / "bad.dat"
    good.write_bytes(b"published bytes")
    bad.write_bytes(b"tampered bytes")
    from pipeline.io import sha256_file

    lock.write_text(f"# comment\n{sha256_file(good)}  lab/model.dat  the publisher's release page\n")
    assert read_lock(lock)["lab/model.dat"].source == "the publisher's release page"
    assert check_pinned(good, "lab/model.dat", lock=lock) == "pinned"
    assert check_pinned(bad, "other/model.dat", lock=lock) == "not pinned"
    with pytest.raises(UntrustedModelFile, match=r"bad.dat \(lab/model.dat\) has sha256 .* pins .*--trust-model-files"):
        check_pinned(bad, "lab/model.dat", lock=lock)
    said = []
    assert check_pinned(bad, "lab/model.dat", trust=True, log=said.append, lock=lock) == "trusted"
    assert said and said[0].startswith("warning:") and "--trust-model-files was given" in said[0]


def test_the_shipped_lock_pins_the_installed_dlib_predictor_and_refuses_another(tmp_path, monkeypatch):
    from pipeline.params import resolve
    from pipeline.tasks import check_landmark_model

    params = resolve({}, "params")
    assert params["face"]["backend"] == "dlib"
    check_landmark_model(params)  # the published file: passes
    other = tmp_path / "shape_predictor_68_face_landmarks.dat"
    other.write_bytes(b"not the published predictor")
    monkeypatch.setenv("MEPIPE_DLIB_PREDICTOR", str(other))
    with pytest.raises(UntrustedModelFile, match="dlib/shape_predictor_68_face_landmarks.dat"):
        check_landmark_model(params)
    check_landmark_model(params, trust=True, log=lambda *a: None)


def _calls(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            dotted = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            base = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
            if (base + "." + dotted if base else dotted) == name:
                yield node


def test_every_load_of_a_user_file_in_the_code_base_cannot_run_code():
    """torch.load only with weights_only=True; no pickle/joblib/skops loads of our own
    (py-feat's skops load is guarded by check_skops_types); no np.load(allow_pickle=True)."""
    problems = []
    for folder in ("pipeline", "stages", "products", "training", "mepipe"):
        for f in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(f.read_text())
            where = f.relative_to(REPO)
            for call in _calls(tree, "torch.load"):
                kw = {k.arg: k.value for k in call.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    problems.append(f"{where}:{call.lineno} torch.load without weights_only=True")
            for name in ("pickle.load", "pickle.loads", "joblib.load", "load"):
                for call in _calls(tree, name):
                    if name != "load" or "skops" in f.read_text():
                        problems.append(f"{where}:{call.lineno} {name}")
            for call in _calls(tree, "np.load"):
                if any(k.arg == "allow_pickle" for k in call.keywords):
                    problems.append(f"{where}:{call.lineno} np.load(allow_pickle=...)")
    assert problems == []


def test_the_audit_sees_an_unsafe_load(tmp_path):
    tree = ast.parse("import torch\nx = torch.load('w.pt')\ny = torch.load('w.pt', weights_only=True)\n")
    assert [c.lineno for c in _calls(tree, "torch.load")] == [2, 3]
