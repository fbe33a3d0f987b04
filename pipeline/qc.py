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
from schemas.arrays import CROP


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


def motion_tiles(g, r: dict, ds: Dataset) -> list[np.ndarray]:
    """Pictures of the motion products of one sample (those present in the store)."""
    from stages.flow import flow_to_color
    from stages.temporal import magnify_pair

    i, out = int(r["index"]), []
    if "pairs/flow_tvl1" in g and isinstance(r.get("fp_flow"), str):
        f = g["pairs/flow_tvl1"][i].astype(np.float32)
        out.append(flow_to_color(f))
        s = g["pairs/strain_tvl1"][i].astype(np.float32)
        out.append(
            cv2.applyColorMap(
                np.clip(s / max(np.percentile(s, 99), 1e-6) * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO
            )[..., ::-1]
        )
    if "micro/flow224" in g and isinstance(r.get("fp_micro"), str):
        mag = magnify_pair(
            g["pairs/onset_rgb"][i].astype(np.float32),
            g["pairs/apex_rgb"][i].astype(np.float32),
            ds.params["magnify"]["alpha"],
            ds.params["magnify"]["levels"],
        )
        out.append(np.clip(mag, 0, 255).astype(np.uint8))
        fl = flow_to_color(g["micro/flow224"][i].astype(np.float32))
        for x, y in g["micro/apex_landmarks224"][i]:
            cv2.circle(fl, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
        out.append(fl)
    if "fdp/dynamic_image" in g and isinstance(r.get("fp_clip"), str):
        out.append(
            cv2.cvtColor((g["fdp/dynamic_image"][i].astype(np.float32) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        )
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
        out.append(f"<h3>{html.escape(vid)}</h3><img src='{name}'>")
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
    out.append("<img src='candidates_vs_phi.png'>")
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


def _sample_strip(g, r: dict, ds: Dataset) -> np.ndarray:
    """One sample's row of tiles (200x200 each): onset with landmarks, apex, diffs,
    depth (raw, filled, diff) and whatever motion products the run made."""
    i = int(r["index"])
    tiles = [
        g["pairs/onset_rgb"][i],
        g["pairs/apex_rgb"][i],
        _diff_img(g["pairs/rgb_diff"][i]),
        _diff_img(g["pairs/gray_diff"][i]),
    ]
    if ds.has_depth and isinstance(r.get("onset_depth_path"), str):
        box = (r["crop_x0"], r["crop_y0"], r["crop_x1"], r["crop_y1"])
        raw, _, _ = depth_crops(r, ds.root(), tuple(int(v) for v in box), ds.params)
        tiles += [
            _depth_img(cv2.resize(raw, (CROP, CROP), interpolation=cv2.INTER_NEAREST)),
            _depth_img(g["pairs/onset_depth"][i]),
            _diff_img(g["pairs/depth_diff"][i]),
        ]
    on = tiles[0].copy()
    for x, y in g["pairs/onset_landmarks"][i]:
        cv2.circle(on, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1)
    tiles[0] = on
    tiles += motion_tiles(g, r, ds)
    return np.hstack([cv2.resize(t, (200, 200)) for t in tiles])


SAMPLES_HEADING = (
    "<h2>Samples</h2><p>onset (landmarks) | apex | RGB diff | gray diff | depth raw (0 = black) | "
    "depth filled | depth diff | TV-L1 flow (colour wheel) | optical strain | apex x alpha "
    "magnified | flow of the magnified pair (224) | dynamic image (8 frames) | TIM frame 8/16 "
    "(whatever products the run made)</p>"
)


def _timings_table(stage_ms: dict) -> list[str]:
    if not stage_ms:
        return []
    return [
        "<h2>Stage timings (ms per clip)</h2><table border=1>"
        + "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f}</td></tr>" for k, v in stage_ms.items())
        + "</table>"
    ]


def _exclusions_table(excl: pd.DataFrame) -> str:
    return (
        "<h2>Exclusions</h2><table border=1><tr><th>stage</th><th>reason</th><th>detail</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(str(e.stage))}</td><td>{html.escape(str(e.reason))}</td>"
            f"<td>{html.escape(str(e.detail))}</td></tr>"
            for e in excl.itertuples()
        )
        + "</table>"
    )


def write_report(
    store: Store, ds: Dataset, snapshot: str, run_dir: Path, stage_ms: dict, n_samples: int = 6
) -> tuple[Path, list[str]]:
    """The run's QC page (<run_dir>/qc/index.html): counts, stage timings, image strips
    of a few samples, the AU screening plots and the exclusions. Returns (page, warnings:
    images that could not be written, also listed on the page)."""
    qc = run_dir / "qc"
    qc.mkdir(parents=True, exist_ok=True)
    g = store.group(snapshot)
    man = store.table("manifest", snapshot)
    excl = store.table("exclusions", snapshot)
    ok = man[man["status"] == "ok"]
    warnings: list[str] = []
    parts = [
        f"<h1>QC report: {html.escape(ds.name)}</h1>",
        f"<p>snapshot <code>{snapshot}</code>; {len(ok)}/{len(man)} samples ok; {len(excl)} exclusions.</p>",
        *_timings_table(stage_ms or {}),
        SAMPLES_HEADING,
    ]
    for r in _pick(ok, n_samples).to_dict("records"):
        name = f"sample_{int(r['index']):05d}.png"
        if not cv2.imwrite(str(qc / name), _sample_strip(g, r, ds)[..., ::-1]):
            warnings.append(f"QC image {qc / name} could not be written (sample {r['sample_id']})")
        parts.append(
            f"<h3>{html.escape(r['sample_id'])} ({html.escape(str(r['emotion']))}, AU "
            f"{html.escape(str(r['au_raw']))})</h3><img src='{name}'>"
        )
    parts += au_section(store, ds, snapshot, qc)
    parts.append(_exclusions_table(excl))
    if warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    out = qc / "index.html"
    out.write_text("<html><body>" + "\n".join(parts) + "</body></html>")
    return out, warnings
