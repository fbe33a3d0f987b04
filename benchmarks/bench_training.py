"""Loader throughput (store vs per-sample PNG vs per-sample .npy) and CPU training speed.

    .venv/bin/python benchmarks/bench_training.py      # needs `make preprocess` first

Loader: the DVSCL feed (rgb_diff + depth_diff, int16/int32 310x310) of every demo sample,
read in a random order into torch batches of 16, from (a) the Zarr/Icechunk store via
DVSCLDataset, (b) one 16-bit PNG per array per sample (the signed difference offset by
32768 / 65536), (c) one .npy per array per sample; all written in this run to a temp
folder, read back with a cold-ish page cache not controlled (same for all three).
Training: samples/s of DVSCL pretraining and of FDP training, tiny configs, on the CPU.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.catalog import load_catalog  # noqa: E402
from training.dvscl.feed import DVSCLDataset, pair_tensors  # noqa: E402


class FileDataset(torch.utils.data.Dataset):
    def __init__(self, folder: Path, n: int, kind: str):
        self.folder, self.n, self.kind = folder, n, kind

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.kind == "npy":
            rgb, dep = np.load(self.folder / f"{i}_rgb.npy"), np.load(self.folder / f"{i}_depth.npy")
        else:
            rgb = (
                cv2.imread(str(self.folder / f"{i}_rgb.png"), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.int32) - 32768
            )
            dep = cv2.imread(str(self.folder / f"{i}_depth.png"), cv2.IMREAD_UNCHANGED).astype(np.int64) * 2 - 65536
        return pair_tensors(rgb, dep, "depth")  # the same conversion as DVSCLDataset


class Order(torch.utils.data.Sampler):
    def __init__(self, order):
        self.order = order

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


def rate(ds, order, reps=3) -> float:
    """Samples/s through a DataLoader (batches of 16, same random order for every source;
    a Dataset with __getitems__ gets each batch in one call)."""
    keys = ("rgb_diff", "view_diff")
    collate = lambda b: {k: torch.stack([x[k] for x in b]) for k in keys}  # noqa: E731
    dl = torch.utils.data.DataLoader(ds, batch_size=16, sampler=Order(order), collate_fn=collate)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        for _ in dl:
            pass
        best = max(best, len(order) / (time.perf_counter() - t))
    return best


def main() -> None:
    repo = Path(__file__).resolve().parent.parent
    cat = load_catalog(repo / "catalog.yaml")
    ds = cat.dataset("demo")
    store = cat.store_root / "demo"
    pairs = DVSCLDataset(store, ds.scheme, view="depth", sources=("labelled", "selected"))
    g = pairs.store_group()
    idx = [int(r["index"]) for r in pairs.rows]
    tmp = Path(tempfile.mkdtemp(prefix="mepipe-loader-"))
    for j, i in enumerate(idx):
        rgb, dep = g["pairs/rgb_diff"][i], g["pairs/depth_diff"][i]
        np.save(tmp / f"{j}_rgb.npy", rgb)
        np.save(tmp / f"{j}_depth.npy", dep)
        cv2.imwrite(str(tmp / f"{j}_rgb.png"), (rgb.astype(np.int32) + 32768).astype(np.uint16)[..., ::-1])
        cv2.imwrite(str(tmp / f"{j}_depth.png"), ((dep.astype(np.int64) + 65536) // 2).astype(np.uint16))
    order = np.random.default_rng(0).permutation(len(idx)).tolist()
    r_store = rate(pairs, order)
    t = time.perf_counter()
    cached = DVSCLDataset(store, ds.scheme, view="depth", sources=("labelled", "selected"), cache_dir=tmp / "cache")
    cached.store_group()
    fill = time.perf_counter() - t
    r_cache = rate(cached, order)
    r_png = rate(FileDataset(tmp, len(idx), "png"), order)
    r_npy = rate(FileDataset(tmp, len(idx), "npy"), order)
    n_rows = g["pairs/rgb_diff"].shape[0]
    print(f"loader, DVSCL feed (rgb_diff + depth_diff), {len(idx)} samples, random order, batches of 16:")
    print(
        f"  store (Zarr/Icechunk)  {r_store:8.1f} samples/s  (x{r_store / r_png:.2f} PNG, x{r_store / r_npy:.2f} npy)"
    )
    print(
        f"  store + local cache    {r_cache:8.1f} samples/s  (x{r_cache / r_png:.2f} PNG, x{r_cache / r_npy:.2f} npy); "
        f"filled once in {fill:.2f} s ({n_rows / fill:.0f} rows/s, {n_rows} rows incl. samples not in the feed)"
    )
    print(f"  per-sample PNG         {r_png:8.1f} samples/s")
    print(f"  per-sample .npy        {r_npy:8.1f} samples/s")
    if "--loader-only" in sys.argv:
        return

    from training.dvscl.configs import CONFIGS as DC
    from training.dvscl.train import pretrain
    from training.fdp.configs import CONFIGS as FC
    from training.fdp.train import train_fdp
    from training.runtime import setup

    cfg = {**DC["tiny"], "epochs": 1}
    t = time.perf_counter()
    pretrain(pairs, cfg, setup("cpu"), tmp / "ck.pt", log=lambda *a: None, progress=False)
    print(
        f"DVSCL pretraining (tiny, 64 px, CPU): {len(pairs) // cfg['batch'] * cfg['batch'] / (time.perf_counter() - t):.1f} samples/s"
    )
    FC["bench"] = {**FC["tiny"], "epochs": 1}
    s = train_fdp(store, ds.scheme, tmp / "fdp", "bench", log=lambda *a: None, progress=False)
    print(f"FDP training (tiny, 8 x 64 px frames, CPU): {s['train_samples_per_s']:.1f} samples/s")


if __name__ == "__main__":
    main()
