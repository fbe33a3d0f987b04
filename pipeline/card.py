"""The dataset card: a markdown page generated for every committed version, stored in the
version itself (schemas.tables.CARD) and printed by `mepipe versions card`.

It says what the arrays are (shape, dtype, units), which method feeds they serve, the
label scheme, the counts and exclusions, and how the version was made (code version,
parameters, estimators, source-file checksums). Generated only from the commit's
provenance and the schemas, so two identical runs produce the same card.
"""

from __future__ import annotations

import json

import pandas as pd

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
        _made_section(meta, description)
        + _samples_section(meta, manifest)
        + _ingest_section(meta, exclusions)
        + _arrays_section(meta, scheme, arrays)
        + READING
    )
