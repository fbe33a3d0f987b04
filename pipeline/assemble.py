"""The assemble phase of a run: the version's tables from the plan and what was written.

One manifest row per array row (status, crop box, fingerprints, clip region), the
exclusions (those decided before any task, then each excluded sample's), and the
checksums of every array row (written now, or kept from the parent where the row stayed).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.execute import Written
from pipeline.planning import RunPlan, SamplePlan, old_fingerprint
from products import REGISTRY
from stages.adapters.common import exclusion_row

CROP_COLUMNS = ("crop_x0", "crop_y0", "crop_x1", "crop_y1")
RESULT_COLUMNS = ("status", "reason", "landmark_backend", "eye_angle", *CROP_COLUMNS)


@dataclass
class Assembled:
    """The tables of the new version, and the per-stage timings of the tasks run."""

    manifest: pd.DataFrame
    exclusions: pd.DataFrame
    checksums: pd.DataFrame
    stage_ms: dict  # stage -> mean ms per clip computed in this run


def _fingerprint_columns(p: SamplePlan, groups: tuple) -> dict:
    """fp_<product> of a row: this run's for the products it made; a product it did not
    make keeps its old fingerprint if the row stayed, else none."""
    out = {}
    for name in REGISTRY:
        if name in groups:
            out[f"fp_{name}"] = p.fingerprints[name]
        else:
            out[f"fp_{name}"] = old_fingerprint(p.old, name) if p.stayed else None
    return out


def _clip_columns(p: SamplePlan, plan: RunPlan) -> dict:
    """clip_start / clip_len: this run's region, or the old one if it kept the row."""
    if "clip" in plan.groups:
        return {"clip_start": plan.starts[p.index], "clip_len": plan.lengths[p.index]}
    if p.stayed:
        return {"clip_start": p.old.get("clip_start"), "clip_len": p.old.get("clip_len")}
    return {}


def _computed_columns(info: dict, old: dict | None) -> dict:
    """Status columns of a sample computed now (a partial recompute keeps the old
    landmark backend and eye angle when its task did not redo the crop)."""
    if info["status"] != "ok":
        return {"status": "excluded", "reason": info["reason"]}
    box = info["box"]
    angle = info.get("eye_angle")
    if angle is None and old is not None:
        angle = old.get("eye_angle")
    return {
        "status": "ok",
        "reason": None,
        "landmark_backend": info["landmark_backend"] or (old or {}).get("landmark_backend"),
        "eye_angle": angle,
        **dict(zip(CROP_COLUMNS, box)),
    }


def _sample_columns(p: SamplePlan, plan: RunPlan, written: Written, sample_id: str) -> tuple[dict, dict | None]:
    """(the manifest columns a sample's row adds to its sample row, task result of a
    sample computed now or None)."""
    r = {"index": p.index, **_fingerprint_columns(p, plan.groups), **_clip_columns(p, plan)}
    info = written.infos.get(p.index) if p.action == "compute" else None
    if info is not None:
        r.update(_computed_columns(info, p.old))
    elif p.action != "compute" and p.old is not None:
        r.update({k: p.old.get(k) for k in RESULT_COLUMNS})
    else:
        raise RuntimeError(f"sample {sample_id}: no result was written (engine bug)")
    return r, info


def _task_exclusion(sample: pd.Series, info: dict, dataset: str) -> dict:
    """The exclusion of a sample whose task excluded it (or failed)."""
    ann_row = None if pd.isna(sample["ann_row"]) else int(sample["ann_row"])
    return exclusion_row(
        dataset, sample["ann_file"], ann_row, info["reason"], info["detail"], sample["sample_id"], info["stage"]
    )


def checksums_table(plan: RunPlan, old: pd.DataFrame | None, new: dict[int, dict[str, str]]) -> pd.DataFrame:
    """The checksums table of this version: values written now, plus the old rows of
    samples (and arrays) that stayed where they were and were not rewritten. Built
    column-wise (one row per sample and array: a dict per row would be most of it)."""
    old_by = {} if old is None else {sid: dict(zip(d["array"], d["sha256"])) for sid, d in old.groupby("sample_id")}
    ids = plan.samples["sample_id"].tolist()
    cols: dict[str, list] = {"sample_id": [], "index": [], "array": [], "sha256": []}
    for p in plan.plans:
        sid = ids[p.index]
        shas = dict(old_by.get(sid, {})) if p.stayed else {}
        shas.update(new.get(p.index, {}))
        for a, h in sorted(shas.items()):
            cols["sample_id"].append(sid)
            cols["index"].append(p.index)
            cols["array"].append(a)
            cols["sha256"].append(h)
    return pd.DataFrame(cols)


def assemble(
    plan: RunPlan,
    written: Written,
    dataset: str,
    old_exclusions: pd.DataFrame | None,
    old_checksums: pd.DataFrame | None,
) -> Assembled:
    """The manifest, exclusions and checksums of the new version. The manifest is the
    samples table with the run's columns beside it (built column-wise: no copy of each
    sample's row, whose frame lists are most of its size)."""
    samples = plan.samples.reset_index(drop=True)
    ids = samples["sample_id"].tolist()
    added, excl_rows, timings = [], [], []
    for p in plan.plans:
        r, info = _sample_columns(p, plan, written, ids[p.index])
        added.append(r)
        if info is not None:
            timings.append(info.get("timings", {}))
            if info["status"] != "ok":
                excl_rows.append(_task_exclusion(samples.iloc[p.index], info, dataset))
        elif r["status"] == "excluded" and old_exclusions is not None:
            excl_rows.extend(old_exclusions[old_exclusions["sample_id"] == ids[p.index]].to_dict("records"))
    manifest = pd.concat([samples, pd.DataFrame(added, index=[p.index for p in plan.plans])], axis=1)
    for c in CROP_COLUMNS:
        manifest[c] = (manifest[c] if c in manifest else pd.Series([None] * len(manifest))).astype("Int32")
    exclusions = pd.concat(
        [plan.exclusions, pd.DataFrame(excl_rows, columns=plan.exclusions.columns)], ignore_index=True
    )
    tm = pd.DataFrame(timings)
    stage_ms = {c: float(tm[c].mean()) for c in tm.columns} if len(tm) else {}
    return Assembled(manifest, exclusions, checksums_table(plan, old_checksums, written.shas), stage_ms)
