"""QC report of a run: an HTML page with onset/apex crops, depth before/after zero-fill
and difference images for a few samples, the stage timings and the exclusions."""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.catalog import Dataset
from pipeline.store import Store
from pipeline.tasks import depth_crops
from schemas.arrays import ARRAYS, CROP
from schemas.tables import MACRO, SELECTED


def _diff_img(d: np.ndarray) -> np.ndarray:
    """Signed difference -> RGB picture: grey 128 = 0, scaled so the 99th pct is visible."""
    d = d.astype(np.float32)
    if d.ndim == 3:
        d = d.mean(axis=2)
    s = max(float(np.percentile(np.abs(d), 99)), 1.0)
    g = np.clip(128 + 127 * d / s, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(g, cv2.COLORMAP_TWILIGHT_SHIFTED)[..., ::-1]


def _depth_img(d: np.ndarray) -> np.ndarray:
    v = d[d > 0]
    lo, hi = (np.percentile(v, 1), np.percentile(v, 99)) if v.size else (0, 1)
    g = np.clip((d.astype(np.float32) - lo) / max(hi - lo, 1) * 255, 0, 255).astype(np.uint8)
    g[d == 0] = 0
    return cv2.applyColorMap(g, cv2.COLORMAP_VIRIDIS)[..., ::-1]


def _strain_img(s: np.ndarray) -> np.ndarray:
    """Optical strain (H, W) -> RGB picture, scaled so the 99th percentile is bright."""
    s = s.astype(np.float32)
    g = np.clip(s / max(np.percentile(s, 99), 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(g, cv2.COLORMAP_INFERNO)[..., ::-1]


def motion_tiles(g, r: dict, ds: Dataset) -> list[np.ndarray]:
    """Pictures of the motion products of one sample: each only where the version holds
    its arrays for this sample (`holds`)."""
    from stages.flow import flow_to_color
    from stages.temporal import magnify_pair

    i, out = int(r["index"]), []
    if holds(g, r, "pairs/flow_tvl1"):
        out.append(flow_to_color(g["pairs/flow_tvl1"][i].astype(np.float32)))
    if holds(g, r, "pairs/strain_tvl1"):
        out.append(_strain_img(g["pairs/strain_tvl1"][i]))
    if all(holds(g, r, n) for n in ("pairs/onset_rgb", "pairs/apex_rgb", "micro/flow224")):
        mag = magnify_pair(
            g["pairs/onset_rgb"][i].astype(np.float32),
            g["pairs/apex_rgb"][i].astype(np.float32),
            ds.params["magnify"]["alpha"],
            ds.params["magnify"]["levels"],
        )
        out.append(np.clip(mag, 0, 255).astype(np.uint8))
    if holds(g, r, "micro/flow224"):
        fl = flow_to_color(g["micro/flow224"][i].astype(np.float32))
        if holds(g, r, "micro/apex_landmarks224"):
            for x, y in g["micro/apex_landmarks224"][i]:
                cv2.circle(fl, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
        out.append(fl)
    if holds(g, r, "fdp/dynamic_image"):
        di = (g["fdp/dynamic_image"][i].astype(np.float32) * 255).astype(np.uint8)
        out.append(cv2.cvtColor(di, cv2.COLOR_GRAY2RGB))
    if holds(g, r, "attrcl/rgb16"):
        out.append(g["attrcl/rgb16"][i][8])
    return out


def _spread(df: pd.DataFrame, n: int) -> pd.DataFrame:
    return df.iloc[np.linspace(0, len(df) - 1, min(n, len(df))).astype(int)] if len(df) else df


def au_section(store: Store, ds: Dataset, snapshot: str, qc: Path) -> list[str]:
    """AU intensity curves with the phi line and the selected apexes; candidates vs phi."""
    frames = store.table("au_frames", snapshot)
    if frames is None or not len(frames):
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stages.au import AU_COLUMNS, candidates_vs_phi

    phi = ds.params["au"]["phi"]
    man = store.table("manifest", snapshot)
    sel = man[man["source"] == "selected"]
    out = [
        "<h2>AU screening</h2>",
        f"<p>estimator <b>{html.escape(str(frames['estimator'].iloc[0]))}</b>, "
        f"phi = {phi}; {len(sel)} pairs selected.</p>",
    ]
    for vid, t in frames.groupby("video"):
        fig, ax = plt.subplots(figsize=(10, 3))
        for c in AU_COLUMNS:
            if np.nanmax(t[c].to_numpy(float), initial=0) > 0.5:
                ax.plot(t["frame"], t[c], lw=1, label=c)
        ax.axhline(phi, color="k", ls="--", lw=1, label=f"phi {phi}")
        apex = sel[sel["sample_id"].str.contains(f"/sel/{vid}/", regex=False)]["apex"]
        ax.plot(apex, np.full(len(apex), 5.05), "rv", ms=4, label="selected apex")
        ax.set_ylim(0, 5.3)
        ax.set_xlabel("frame")
        ax.set_ylabel("AU intensity")
        ax.legend(fontsize=6, ncol=6, loc="upper left")
        name = f"au_{vid.replace('/', '_')}.png"
        fig.tight_layout()
        fig.savefig(qc / name, dpi=90)
        plt.close(fig)
        out.append(f"<h3>{html.escape(vid)}</h3>" + _picture(name, f"AU curves {vid}"))
    phis = np.round(np.arange(0.5, 5.01, 0.1), 2)
    counts = candidates_vs_phi(frames[list(AU_COLUMNS)].to_numpy(float), phis)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(phis, counts, "o-", ms=3)
    ax.axvline(phi, color="k", ls="--", lw=1)
    ax.set_xlabel("threshold phi")
    ax.set_ylabel("apex candidates")
    ax.set_title("candidates vs phi (seed 000 Fig. 4)")
    fig.tight_layout()
    fig.savefig(qc / "candidates_vs_phi.png", dpi=90)
    plt.close(fig)
    out.append(_picture("candidates_vs_phi.png", "candidates vs phi"))
    return out


def _pick(ok: pd.DataFrame, n_samples: int) -> pd.DataFrame:
    """A few ok samples spread over the version: labelled and AU-selected alike."""
    if not len(ok):
        return ok
    return pd.concat(
        [
            _spread(ok[ok["source"] == s], n_samples // 2 if (ok["source"] != s).any() else n_samples)
            for s in ok["source"].unique()
        ]
    )


def holds(g, r: dict, name: str) -> bool:
    """Whether the version holds array `name` (schemas.arrays) AND it was written for the
    manifest row `r` (the row's fingerprint of the array's product is set). A run that made
    only some feeds (`make preprocess METHODS=microauclip`) lacks other products' arrays."""
    return name in g and isinstance(r.get(f"fp_{ARRAYS[name].group}"), str)


def _depth_tiles(g, r: dict, ds: Dataset) -> list[np.ndarray]:
    """Depth raw (re-read from the source frames), filled and apex - onset difference."""
    i = int(r["index"])
    if not (ds.has_depth and isinstance(r.get("onset_depth_path"), str)):
        return []
    if not all(holds(g, r, n) for n in ("pairs/onset_depth", "pairs/depth_diff")):
        return []
    box = (r["crop_x0"], r["crop_y0"], r["crop_x1"], r["crop_y1"])
    raw, _, _ = depth_crops(r, ds.root(), tuple(int(v) for v in box), ds.params)
    return [
        _depth_img(cv2.resize(raw, (CROP, CROP), interpolation=cv2.INTER_NEAREST)),
        _depth_img(g["pairs/onset_depth"][i]),
        _diff_img(g["pairs/depth_diff"][i]),
    ]


def _crop_tiles(g, r: dict) -> list[np.ndarray]:
    """Onset (with its landmarks), apex, RGB and gray differences: those the version holds."""
    i, out = int(r["index"]), []
    if holds(g, r, "pairs/onset_rgb"):
        on = np.ascontiguousarray(g["pairs/onset_rgb"][i])
        if holds(g, r, "pairs/onset_landmarks"):
            for x, y in g["pairs/onset_landmarks"][i]:
                cv2.circle(on, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1)
        out.append(on)
    if holds(g, r, "pairs/apex_rgb"):
        out.append(g["pairs/apex_rgb"][i])
    out += [_diff_img(g[n][i]) for n in ("pairs/rgb_diff", "pairs/gray_diff") if holds(g, r, n)]
    return out


def _sample_strip(g, r: dict, ds: Dataset) -> np.ndarray | None:
    """One sample's row of tiles (200x200 each, RGB uint8 (200, 200*n, 3)): onset with
    landmarks, apex, diffs, depth (raw, filled, diff) and the motion products, each only
    where the version holds that array for this sample; None when it holds none."""
    tiles = _crop_tiles(g, r) + _depth_tiles(g, r, ds) + motion_tiles(g, r, ds)
    return np.hstack([cv2.resize(t, (200, 200)) for t in tiles]) if tiles else None


SAMPLES_HEADING = (
    "<h2>Samples</h2><p>onset (landmarks) | apex | RGB diff | gray diff | depth raw (0 = black) | "
    "depth filled | depth diff | TV-L1 flow (colour wheel) | optical strain | apex x alpha "
    "magnified | flow of the magnified pair (224) | dynamic image (8 frames) | TIM frame 8/16 "
    "(whatever products the run made)</p>"
)


# The page fits the browser window: pictures scale down to the page width (click one for
# its full size), long table cells wrap instead of pushing the page wider.
STYLE = (
    "<style>body{font-family:sans-serif;margin:1em;overflow-wrap:anywhere}"
    "img{max-width:100%;height:auto}table{border-collapse:collapse;max-width:100%}"
    "td,th{border:1px solid #999;padding:2px 6px;text-align:left}</style>"
)


def _picture(name: str, alt: str) -> str:
    """An image scaled to the page width that links to its full-size file."""
    return f"<a href='{name}' title='click for full size'><img src='{name}' alt='{html.escape(alt, quote=True)}'></a>"


def emotion_text(r: dict) -> str:
    """What the page says for a sample's emotion: AU-selected pairs and macro-expressions
    (schemas.tables SELECTED, MACRO) carry no emotion label by design."""
    if r.get("source") == SELECTED:
        return "AU-selected (no label)"
    if r.get("source") == MACRO:
        return "macro-expression (no label)"
    return str(r["emotion"]) if isinstance(r.get("emotion"), str) else "(no emotion)"


def _table(head: list[str], rows: list[list]) -> str:
    return (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        + "</table>"
    )


def _timings_table(stage_ms: dict) -> list[str]:
    """stage_ms: {'<stage>_ms': mean wall-clock milliseconds per sample over the samples
    this run computed that ran the stage} (pipeline.assemble)."""
    if not stage_ms:
        return []
    rows = [[k[:-3] if k.endswith("_ms") else k, f"{v:.1f}"] for k, v in stage_ms.items()]
    return [
        "<h2>Stage timings</h2><p>Mean wall-clock time per sample, over the samples this run "
        "computed (samples reused from the previous version are not timed).</p>",
        _table(["stage", "time per sample (ms)"], rows),
    ]


def _exclusions_table(excl: pd.DataFrame) -> str:
    rows = [[e.stage, e.reason, e.detail] for e in excl.itertuples()]
    return "<h2>Exclusions</h2>" + _table(["stage", "reason", "detail"], rows)


def summary_section(man: pd.DataFrame, excl: pd.DataFrame, ds: Dataset) -> list[str]:
    """Counts at the top of the page: samples per source (all / ok), ok labelled samples
    per class under each label scheme of the dataset, exclusions per stage and reason."""
    from stages.labels import class_counts

    ok = man[man["status"] == "ok"]
    src = [[s, int((man["source"] == s).sum()), int((ok["source"] == s).sum())] for s in man["source"].unique()]
    labelled = ok[ok["source"] == "labelled"]["emotion"]
    out = ["<h2>Summary</h2>", "<h3>Samples per source</h3>", _table(["source", "samples", "ok"], src)]
    for name, counts in class_counts(labelled, ds.schemes or {ds.label_scheme: ds.scheme}).items():
        out += [
            f"<h3>Ok labelled samples per class (label scheme {html.escape(name)})</h3>",
            _table(["class", "samples"], [[k, v] for k, v in counts.items()]),
        ]
    by = excl.groupby(["stage", "reason"]).size().reset_index(name="n").values.tolist() if len(excl) else []
    return out + ["<h3>Exclusions per reason</h3>", _table(["stage", "reason", "rows"], by) if by else "<p>none</p>"]


def _sample_parts(g, ok: pd.DataFrame, ds: Dataset, qc: Path, n_samples: int, warnings: list[str]) -> list[str]:
    """The image strips of a few samples (files in `qc`), each a heading + a picture."""
    parts = [SAMPLES_HEADING]
    for r in _pick(ok, n_samples).to_dict("records"):
        name = f"sample_{int(r['index']):05d}.png"
        au = str(r["au_raw"]) if isinstance(r.get("au_raw"), str) else "-"
        head = f"<h3>{html.escape(r['sample_id'])} ({html.escape(emotion_text(r))}, AU {html.escape(au)})</h3>"
        strip = _sample_strip(g, r, ds)
        if strip is None:
            parts.append(head + "<p>no image array of this sample in this version</p>")
            continue
        if not cv2.imwrite(str(qc / name), strip[..., ::-1]):
            warnings.append(f"QC image {qc / name} could not be written (sample {r['sample_id']})")
        parts.append(head + _picture(name, r["sample_id"]))
    return parts


def write_report(
    store: Store, ds: Dataset, snapshot: str, run_dir: Path, stage_ms: dict, n_samples: int = 6
) -> tuple[Path, list[str]]:
    """The run's QC page (<run_dir>/qc/index.html): summary counts, stage timings, image
    strips of a few samples, the AU screening plots and the exclusions. Returns (page,
    warnings: images that could not be written, also listed on the page)."""
    qc = run_dir / "qc"
    qc.mkdir(parents=True, exist_ok=True)
    man = store.table("manifest", snapshot)
    excl = store.table("exclusions", snapshot)
    ok = man[man["status"] == "ok"]
    warnings: list[str] = []
    parts = [
        f"<h1>QC report: {html.escape(ds.name)}</h1>",
        f"<p>snapshot <code>{snapshot}</code>; {len(ok)}/{len(man)} samples ok; {len(excl)} exclusions.</p>",
        *summary_section(man, excl, ds),
        *_timings_table(stage_ms or {}),
        *_sample_parts(store.group(snapshot), ok, ds, qc, n_samples, warnings),
    ]
    parts += au_section(store, ds, snapshot, qc)
    parts.append(_exclusions_table(excl))
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    out = qc / "index.html"
    head = "<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
    out.write_text(
        head + f"<title>QC {html.escape(ds.name)}</title>{STYLE}</head><body>" + "\n".join(parts) + "</body></html>"
    )
    return out, warnings
