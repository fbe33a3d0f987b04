"""The layouts of the annotated ME datasets (DATASETS.md), as data for stages.adapters.annotated."""

import dataclasses

from stages.adapters.annotated import Layout
from stages.adapters.macro import MacroSheet

LAYOUTS = {
    # CAS(ME)^3 Part A: part_A/data/spNO.1/a/color/{n}.jpg, depth in a/depth/ or a/
    "casme3_part_a": Layout(
        "casme3_part_a",
        {
            "subject": "Subject",
            "clip": "Filename",
            "onset": "Onset",
            "apex": "Apex",
            "offset": "Offset",
            "au": "AU",
            "emotion": "emotion",
        },
        clip_dir="{subject}/{clip}/color",
        depth_dirs=("{subject}/{clip}/depth", "{subject}/{clip}"),
        apex_missing="exclude",
    ),
    # CAS(ME)^3 Part C: one long recording per subject, part_C/data/{sub}/color/{n}.jpg; no apex
    "casme3_part_c": Layout(
        "casme3_part_c",
        {"subject": "sub", "clip": "count", "onset": "onset", "offset": "offset", "au": "au", "emotion": "emotion"},
        clip_dir="{subject}/color",
    ),
    # CASME II: CASME2_RAW_selected/sub01/EP02_01f/img46.jpg; Subject is an int
    "casme2": Layout(
        "casme2",
        {
            "subject": "Subject",
            "clip": "Filename",
            "onset": "OnsetFrame",
            "apex": "ApexFrame",
            "offset": "OffsetFrame",
            "au": "Action Units",
            "emotion": "Estimated Emotion",
        },
        clip_dir="{subject}/{clip}",
        subject_format="sub{:02d}",
    ),
    # SAMM: SAMM/006/006_1_2/006_05562.jpg; Subject is an int (006)
    "samm": Layout(
        "samm",
        {
            "subject": "Subject",
            "clip": "Filename",
            "onset": "Onset Frame",
            "apex": "Apex Frame",
            "offset": "Offset Frame",
            "au": "Action Units",
            "emotion": "Estimated Emotion",
        },
        clip_dir="{subject}/{clip}",
        subject_format="{:03d}",
    ),
    # MMEW: Micro_Expression/{emotion}/{Filename}/{n}.jpg
    "mmew": Layout(
        "mmew",
        {
            "subject": "Subject",
            "clip": "Filename",
            "onset": "OnsetFrame",
            "apex": "ApexFrame",
            "offset": "OffsetFrame",
            "au": "Action Units",
            "emotion": "Estimated Emotion",
        },
        clip_dir="{emotion}/{clip}",
    ),
    # 4DME: gray_micro/{sub}/{fold_name}/
    "4dme": Layout(
        "4dme",
        {
            "subject": "sub_ID",
            "clip": "fold_name",
            "onset": "Onset",
            "apex": "Apex",
            "offset": "Offset",
            "au": "AUs",
            "emotion": "Emotion",
        },
        clip_dir="{subject}/{clip}",
    ),
}

# All-expressions sheets whose macro-expression rows a dataset's `macro_annotation` adds
# (stages.adapters.macro). CAS(ME)^3 Part A: CAS(ME)3_part_A_v2.xls, sheet AU+Emotion, has
# the labelled sheet's columns (Subject, Filename, Onset, Apex, Offset, AU), no emotion, and
# `Expression type` Macro-expression / Micro-expression; the same frame folders.
MACRO_SHEETS = {
    "casme3_part_a": MacroSheet(
        dataclasses.replace(
            LAYOUTS["casme3_part_a"],
            columns={k: v for k, v in LAYOUTS["casme3_part_a"].columns.items() if k != "emotion"},
        ),
        type_column="Expression type",
        macro="Macro-expression",
        micro="Micro-expression",
    ),
}
