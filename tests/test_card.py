"""The dataset card's Hugging Face header (issue 17, item 5): YAML front matter between
`---` lines that parses (PyYAML, and huggingface_hub's own card parser where installed),
the hub's size bucket for hand-worked counts, and one config per method feed the version
holds, naming that feed's arrays."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from pipeline.card import dataset_card, size_category
from schemas.arrays import ARRAYS

CROP = ["pairs/onset_rgb", "pairs/apex_rgb", "pairs/onset_landmarks", "pairs/rgb_diff", "pairs/gray_diff"]
MICRO = ["micro/flow224", "micro/apex_landmarks224"]


def _meta(n_ok: int) -> dict:
    return {
        "dataset": "t",
        "code_version": "abc",
        "groups": ["crop", "micro"],
        "adapter": "casme3_part_a",
        "fps": 30,
        "params": {},
        "counts": {"samples": n_ok + 2, "ok": n_ok, "excluded_in_arrays": 2, "excluded_at_ingest": 0},
    }


def _card(n_ok: int, arrays: list[str]) -> str:
    shapes = {a: (n_ok + 2, *ARRAYS[a].shape) for a in arrays}
    return dataset_card(_meta(n_ok), {"happiness": ["happy"]}, "demo", shapes, pd.DataFrame(), pd.DataFrame())


def header(card: str) -> dict:
    """The YAML between the card's first two `---` lines (the card must open with one)."""
    lines = card.split("\n")
    assert lines[0] == "---", lines[:3]
    return yaml.safe_load("\n".join(lines[1 : lines.index("---", 1)]))


@pytest.mark.parametrize(
    "n,bucket",
    [(0, "n<1K"), (79, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (3253, "1K<n<10K"), (10_000, "10K<n<100K"),
     (250_000, "100K<n<1M"), (10**12, "n>1T")],
)  # fmt: skip
def test_size_bucket_of_hand_worked_counts(n, bucket):
    assert size_category(n) == bucket


def test_the_header_parses_and_names_the_feeds_the_version_holds():
    h = header(_card(79, CROP + MICRO))
    assert h["license"] == "other"  # left for the publisher: the comment above it says so
    assert h["size_categories"] == ["n<1K"]
    assert h["task_categories"] == ["image-classification"]  # pairs only, no clips
    # crop + micro arrays: only MicroAUCLIP's feed is complete (DVSCL's needs pairs/depth_diff)
    assert h["configs"] == [
        {"config_name": "microauclip", "data_files": [{"split": "train", "path": MICRO}]},
    ]


def test_a_version_with_every_array_lists_every_feed():
    h = header(_card(3253, list(ARRAYS)))
    assert h["size_categories"] == ["1K<n<10K"]
    assert h["task_categories"] == ["image-classification", "video-classification"]
    assert [c["config_name"] for c in h["configs"]] == ["dvscl", "selfme", "attrcl", "fdp", "microauclip"]
    assert h["configs"][0]["data_files"] == [
        {"split": "train", "path": ["pairs/rgb_diff", "pairs/depth_diff", "pairs/gray_diff"]}
    ]


def test_a_version_with_no_complete_feed_has_no_configs():
    h = header(_card(5, CROP))
    assert "configs" not in h and h["size_categories"] == ["n<1K"]


def test_the_hub_reads_the_header():
    hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub not installed (optional extra)")
    data = hub.DatasetCard(_card(3253, CROP + MICRO)).data
    assert data.license == "other" and data.size_categories == ["1K<n<10K"]
    assert data.task_categories == ["image-classification"]
    assert data.to_dict()["configs"][0]["config_name"] == "microauclip"
    assert hub.DatasetCard(_card(3253, CROP + MICRO)).text.lstrip().startswith("# Dataset card: t")
