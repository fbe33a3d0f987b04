"""The dataset card: a markdown page generated for every committed version, stored in the
version itself (schemas.tables.CARD) and printed by `mepipe versions card`.

It says what the arrays are (shape, dtype, units), which method feeds they serve, the
label scheme, the counts and exclusions, and how the version was made (code version,
parameters, estimators, source-file checksums). Generated only from the commit's
provenance and the schemas, so two identical runs produce the same card.

The card opens with a YAML header in the Hugging Face dataset-card format (between `---`
lines), so a published version can be listed on the hub: licence (left for the user),
task categories, the hub's size bucket of the ok samples, and one config per method feed
the version holds, naming its arrays.
"""

from __future__ import annotations

import json

import pandas as pd
import yaml

from schemas.arrays import ARRAYS
from schemas.feeds import FEEDS


def _table(rows: list[list], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _made_section(meta: dict, description: str) -> list[str]:
    """Title, description and how the version was made (code, sources, parameters)."""
    lines = [
        f"# Dataset card: {meta['dataset']}",
        "",
        description.strip() or "(no description in the catalog)",
        "",
        "## How this version was made",
        "",
        f"- code version: `{meta['code_version']}`; product groups: {', '.join(meta['groups'])}",
        f"- adapter: `{meta['adapter']}`; frame rate {meta.get('fps')} fps",
        f"- landmark backends used: {', '.join(meta.get('landmark_backends') or []) or '-'}",
        f"- AU estimator: {json.dumps(meta['au_estimator']) if meta.get('au_estimator') else 'none (labelled only)'}",
        "- source files (sha256):",
    ]
    lines += [f"  - `{k}`: `{v}`" for k, v in sorted((meta.get("sources") or {}).items())] or ["  - none"]
    return lines + [
        "- parameters (catalog `params`, defaults filled in):",
        "",
        "```json",
        json.dumps(meta["params"], indent=1, sort_keys=True),
        "```",
        "",
    ]


def _samples_section(meta: dict, manifest: pd.DataFrame) -> list[str]:
    """Counts, samples per source and emotion, and per class under each label scheme."""
    c = meta["counts"]
    lines = [
        "## Samples",
        "",
        f"{c['samples']} samples, {c['ok']} ok, {c['excluded_in_arrays']} excluded after ingest "
        f"(rows kept, arrays zero), {c['excluded_at_ingest']} annotation rows excluded at ingest.",
        "",
    ]
    if len(manifest):
        ok = manifest[manifest["status"] == "ok"]
        by = ok.groupby(["source", "emotion"], dropna=False).size().reset_index(name="n")
        lines += [
            _table(by.values.tolist(), ["source", "emotion", "ok samples"]),
            "",
            f"Subjects: {ok['subject'].nunique()}.",
            "",
        ]
    for scheme_name, counts in (meta.get("class_counts") or {}).items():
        lines += [
            f"Per class under label scheme `{scheme_name}` (ok labelled samples):",
            "",
            _table([[k, v] for k, v in counts.items()], ["class", "samples"]),
            "",
        ]
    return lines


def _ingest_section(meta: dict, exclusions: pd.DataFrame) -> list[str]:
    """What ingest found and decided: layout, known-bad list, sheet repairs, exclusions."""
    lines = []
    if meta.get("layout"):
        lines += [
            "Layout of the source copy (detected): " + "; ".join(f"{k}: {v}" for k, v in meta["layout"].items()),
            "",
        ]
    for name, kb in (meta.get("known_bad") or {}).items():
        lines += [
            f"Known-bad list `{kb['file']}` ({name}): {kb['on_list']} sample(s) with a listed frame, "
            + ("excluded." if kb["excluded"] else "kept and noted in the manifest (exclude_known_bad: false)."),
            "",
        ]
    if meta.get("repairs"):
        rows = [
            [r["file"], r["row"], r["column"], r["old"], r["new"], "yes" if r["applied"] else f"no: {r.get('why', '')}",
             r["source"]]
            for r in meta["repairs"]
        ]  # fmt: skip
        lines += [
            "Sheet repairs applied at ingest (catalog `repairs:`):",
            "",
            _table(rows, ["file", "row", "column", "old", "new", "applied", "source"]),
            "",
        ]
    if len(exclusions):
        ex = exclusions.groupby(["stage", "reason"]).size().reset_index(name="n")
        lines += [
            "Exclusions (full list in the `exclusions` table, `mepipe export`):",
            "",
            _table(ex.values.tolist(), ["stage", "reason", "rows"]),
            "",
        ]
    return lines


def _arrays_section(meta: dict, scheme: dict, arrays: dict[str, tuple]) -> list[str]:
    """The label scheme, the stored arrays and the method feeds they serve."""
    lines = ["## Label scheme", "", f"`{meta.get('label_scheme')}`: class <- emotion words of the annotation", ""]
    lines += [_table([[k, ", ".join(v)] for k, v in scheme.items()], ["class", "emotion words"]), ""]
    lines += [
        "## Arrays",
        "",
        "Axis 0 is the manifest's `index` (ragged arrays: rows `clip_start` .. "
        "`clip_start + clip_len`). Chunk = 1 sample (1 frame for ragged), Zarr v3 sharded, zstd.",
        "",
    ]
    rows = [
        [f"`{n}`", f"{shape}", ARRAYS[n].dtype, ARRAYS[n].units, ARRAYS[n].description]
        for n, shape in sorted(arrays.items())
        if n in ARRAYS
    ]
    lines += [_table(rows, ["array", "stored shape", "dtype", "units", "what"]), ""]
    frows = [
        [f.method, f.seed, ", ".join(f"`{a}`" for a in f.arrays), "yes" if all(a in arrays for a in f.arrays) else "no",
         f.note]
        for f in FEEDS.values()
    ]  # fmt: skip
    return lines + ["## Method feeds", "", _table(frows, ["method", "seed", "arrays", "in this version", "what"]), ""]


READING = [
    "## Reading it",
    "",
    "```python",
    "from training.dvscl.feed import DVSCLDataset",
    "ds = DVSCLDataset('<store path or s3://bucket/prefix>@<tag>', scheme)",
    "```",
    "Tables: `manifest`, `exclusions`, `checksums` (+ `au_frames`, `videos` with AU screening); "
    "`mepipe verify` re-checks every array against `checksums`.",
    "",
]


# The hub's size buckets (huggingface_hub DatasetCardData.size_categories): upper bounds,
# exclusive; n = 1000 is in 1K<n<10K.
SIZE_BUCKETS = [
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
]

# The licence is the source dataset's (e.g. CAS(ME)^3 comes under its own licence
# agreement), which the pipeline cannot know: `other` is the hub's value for a licence
# outside its list, and the comment tells the publisher what to fill in.
LICENSE_LINES = [
    "# licence: the SOURCE dataset's terms apply (e.g. the CAS(ME)^3 licence agreement); set",
    "# license_name and license_link (or a hub licence id) before publishing this card",
    "license: other",
]


def size_category(n: int) -> str:
    """The hub's size bucket of a dataset of `n` examples: 79 -> 'n<1K', 3253 -> '1K<n<10K'."""
    if n < 0:
        raise ValueError(f"a sample count cannot be negative: {n}")
    return next((name for top, name in SIZE_BUCKETS if n < top), "n>1T")


def feeds_held(arrays: dict[str, tuple]) -> list:
    """The method feeds (schemas.feeds) whose arrays this version all holds, in FEEDS order."""
    return [f for f in FEEDS.values() if all(a in arrays for a in f.arrays)]


def hub_header(meta: dict, arrays: dict[str, tuple]) -> list[str]:
    """The card's YAML front matter (Hugging Face dataset-card metadata), `---` lines
    included. Size bucket: the ok samples (excluded rows keep zeroed arrays, not examples).
    configs: one per feed held, its data_files the Zarr paths of the feed's arrays inside
    the store (split `train`: every sample; the papers' splits are made at training time)."""
    video = any(ARRAYS[a].group == "clip" for a in arrays if a in ARRAYS)
    held = feeds_held(arrays)
    body = {
        "pretty_name": f"{meta['dataset']} (mepipe micro-expression version)",
        "task_categories": ["image-classification"] + (["video-classification"] if video else []),
        "tags": ["micro-expression", "facial-expression", "zarr", "icechunk"],
        "size_categories": [size_category(int(meta["counts"]["ok"]))],
        "configs": [
            {"config_name": f.method, "data_files": [{"split": "train", "path": list(f.arrays)}]} for f in held
        ],
    }
    if not held:
        del body["configs"]
    note = [
        "# configs: one per method feed this version holds; paths are Zarr arrays inside the",
        "# Icechunk store (read with mepipe's readers or xarray, not the `datasets` loader)",
    ]
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False).rstrip("\n").split("\n")
    cut = text.index("configs:") if held else len(text)
    return ["---", *LICENSE_LINES, *text[:cut], *(note if held else []), *text[cut:], "---", ""]


def dataset_card(
    meta: dict,
    scheme: dict,
    description: str,
    arrays: dict[str, tuple],
    manifest: pd.DataFrame,
    exclusions: pd.DataFrame,
) -> str:
    """meta: the commit's provenance; arrays: name -> full stored shape."""
    return "\n".join(
        hub_header(meta, arrays)
        + _made_section(meta, description)
        + _samples_section(meta, manifest)
        + _ingest_section(meta, exclusions)
        + _arrays_section(meta, scheme, arrays)
        + READING
    )
