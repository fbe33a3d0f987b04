"""SelfME (seed 001) under LOSO.

Motion learning stage (`motion='learned'`, the default): the motion learner
(training/selfme/motion_learner.py) is trained self-supervised on random frame pairs of
the stored aligned clips (perceptual reconstruction + TPS equivariance, eq. 6-8); the
onset->apex motion of every labelled clip is then its dense motion on the 1/4 lattice,
expanded by cubic B-spline (eq. 9) and made diffeomorphic by scaling-and-squaring, with
gamma = 1 for the training subjects and 2 at inference (table 4). `motion='tvl1'` uses
the stored TV-L1 flow instead (the paper's baseline, table 3).
Classification stage: SCViT, eq. 16 (CE + omega L_sc, omega 0.1, tau 0.07)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.checkpoint import EpochCheckpoint
from training.loop import epoch_batches, step
from training.loso import check_identity, run_loso
from training.runtime import Runtime, manual_seed, start, stream_seed, torch_generator
from training.samplers import EpochSampler
from training.selfme.configs import CONFIGS
from training.selfme.feed import SelfMEDataset
from training.selfme.model import SCViT, scvit_loss
from training.weights import Loaded, load_weights, loaded_counts, log_loaded

# the config keys the motion learner depends on: a learner saved in a run folder is reused
# by a later call only when these (with its data and weight files) are the same
MOTION_KEYS = (
    "seed",
    "motion_epochs",
    "motion_milestones",
    "motion_lr_finetune",
    "motion_lr_scratch",
    "motion_pairs",
    "lambda_eqv",
    "gamma_train",
)
MOTION_FILE = "motion_learner.pt"  # in the run folder; a state_dict any run takes as --motion-weights


def motion_rate(cfg: dict, loaded: Loaded | None) -> tuple[float, str]:
    """The motion learner's Adam rate and why (configs.py): the paper's fine-tuning rate
    `motion_lr_finetune` when every tensor of the learner came from a pretrained file
    (`loaded`), else the from-scratch rate `motion_lr_scratch` (no file, or a file that
    left some tensors randomly initialised)."""
    scratch, finetune = cfg["motion_lr_scratch"], cfg["motion_lr_finetune"]
    if loaded is None:
        return scratch, "the from-scratch rate: the learner is randomly initialised (no --motion-weights)"
    if loaded.missing:
        why = f"{loaded.missing} of the learner's tensors are not in {loaded.path} and start randomly initialised"
        return scratch, f"the from-scratch rate: {why}"
    return finetune, f"the paper's fine-tuning rate: the learner starts from {loaded.path}"


def learn_motion(
    ds: SelfMEDataset, cfg: dict, rt: Runtime, log, progress: bool, vgg_weights=None, motion_weights=None, ckpt=None
):
    """Train the motion learner on random frame pairs of the stored clips (64x64), from the
    local state_dict `motion_weights` when given (at the rate `motion_rate` picks); each
    epoch's pairs and thin-plate splines come from the streams (seed, "motion", epoch),
    and the state is checkpointed after every epoch in `ckpt` (a path; None: none)."""
    from training.selfme.motion_learner import TPS, MotionLearner, Perceptual, equivariance_loss

    device = rt.device
    manual_seed(cfg["seed"])
    model = MotionLearner()
    loaded = load_weights(model, motion_weights, "the SelfME motion learner") if motion_weights else None
    if loaded is not None:
        log(loaded.describe("motion learner"))
    model, perc = model.to(device), Perceptual(vgg_weights).to(device)
    model.vgg_loaded = perc.loaded  # for the run summary
    if perc.loaded is not None:
        log(perc.loaded.describe("VGG-19 (perceptual loss)"))
    lr, why = motion_rate(cfg, loaded)
    log(f"motion learning at lr {lr:g}, {why}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, cfg.get("motion_milestones", []), 0.1)
    ck = EpochCheckpoint(ckpt, model=model, opt=opt, sched=sched) if ckpt else None
    n = max(1, cfg["motion_pairs"] // 8)
    for ep in range(ck.resume(device) if ck else 0, cfg["motion_epochs"]):
        g = torch_generator(cfg["seed"], "motion tps", ep)
        rng = np.random.default_rng(stream_seed(cfg["seed"], "motion pairs", ep))
        t0, tot = time.perf_counter(), 0.0
        for _ in tqdm(range(n), desc=f"motion learning epoch {ep + 1}", disable=not progress, leave=False):
            keys = zip(rng.integers(0, len(ds), 8).tolist(), rng.integers(0, 2**63 - 1, 8).tolist())
            pairs = torch.stack([ds[key]["pair"] for key in keys])  # random clips, random frame pairs
            pairs = (
                F.interpolate(pairs.flatten(0, 1), size=(64, 64), mode="bilinear", align_corners=False)
                .reshape(8, 2, 3, 64, 64)
                .to(device)
            )
            src, tgt = pairs[:, 0], pairs[:, 1]
            with rt.autocast():
                out = model(src, tgt, cfg["gamma_train"])
                loss = perc(out["prediction"], tgt) + cfg["lambda_eqv"] * equivariance_loss(
                    model.kp, tgt, TPS(8, generator=g)
                )
            step(opt, loss)
            tot += loss.item()
        log(f"motion learning epoch {ep + 1}: loss {tot / n:.4f} ({8 * n / (time.perf_counter() - t0):.1f} pairs/s)")
        sched.step()
        if ck:
            ck.save(ep + 1)
    return model.eval()


def motion_identity(ds, cfg: dict, vgg_weights, motion_weights) -> dict:
    """What a trained motion learner depends on: its config keys, weight files and data."""
    ident = {
        "config": {k: cfg.get(k) for k in MOTION_KEYS},
        "vgg_weights": vgg_weights,
        "motion_weights": motion_weights,
        "samples": [r["sample_id"] for r in ds.rows],
    }
    return json.loads(json.dumps(ident, default=str))


def saved_motion_learner(path: Path, identity: dict):
    """The motion learner saved at `path` by an earlier call, if it was trained under
    `identity`; one of another configuration is an error (the run folder is another run's)."""
    from training.selfme.motion_learner import MotionLearner

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: name it rather than torch's internals
        raise ValueError(
            f"{path}: not readable as a saved motion learner ({type(e).__name__}: {e}); move it away"
        ) from e
    old = saved.get("identity") if isinstance(saved, dict) else None
    if old is None:
        raise ValueError(f"{path}: not a motion learner saved by a SelfME run (no identity); move it away")
    if old != identity:
        diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
        raise ValueError(
            f"{path} holds a motion learner of another configuration (differs in {diff}); "
            "give another --out or delete the folder"
        )
    model = MotionLearner()
    try:
        model.load_state_dict(saved["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise ValueError(f"{path}: its tensors do not fit this code's motion learner ({e}); move it away") from e
    return model


def motion_learner(
    ds: SelfMEDataset, cfg: dict, rt: Runtime, out: Path, log, progress: bool, vgg_weights=None, motion_weights=None
):
    """The run's trained motion learner (eval mode): the one an earlier call saved in
    out/motion_learner.pt under the same configuration (a resumed run does not learn
    motion again), else learn_motion's, saved there as {"state_dict", "identity"}."""
    path = Path(out) / MOTION_FILE
    identity = motion_identity(ds, cfg, vgg_weights, motion_weights)
    if path.is_file():
        model = saved_motion_learner(path, identity)
        model.vgg_loaded = None  # no VGG file read in this call
        log(f"motion learning skipped: {path} holds the motion learner of this configuration")
        return model.to(rt.device).eval()
    ckpt = Path(out) / "checkpoints" / MOTION_FILE  # after every epoch, until the learner is saved
    model = learn_motion(ds, cfg, rt, log, progress, vgg_weights, motion_weights, ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "identity": identity}, tmp)
    tmp.rename(path)  # whole or absent: a killed run leaves no half-written learner
    EpochCheckpoint(ckpt).discard()
    log(f"motion learner saved to {path} (another run takes it as --motion-weights)")
    return model


@torch.no_grad()
def learned_motion(model, onset_apex: torch.Tensor, size: int, gamma: float) -> torch.Tensor:
    """(N, 2, 3, H, W) onset/apex -> (N, 2, size, size): dense motion on the 1/4 lattice,
    B-spline expanded (eq. 9), scaling-and-squaring (diffeomorphic), in pixels of `size`."""
    from training.selfme.model import bspline_upsample, scaling_and_squaring

    x = F.interpolate(onset_apex.flatten(0, 1), size=(64, 64), mode="bilinear", align_corners=False)
    x = x.reshape(-1, 2, 3, 64, 64)
    d = model.motion(x[:, 0], x[:, 1], gamma)  # (N, 2, 16, 16) lattice pixels
    v = bspline_upsample(d * (size / d.shape[-1]), (size, size))
    return scaling_and_squaring(v)


def _motion(flow: torch.Tensor, size: int, gamma: float) -> torch.Tensor:
    """(N, 2, 310, 310) pixels -> (N, 2, size, size), vectors rescaled, amplified by gamma."""
    out = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False) * (size / flow.shape[-1])
    return out * gamma


def train_selfme(
    store_path: Path,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    *,
    weights: str | None = None,
    motion: str = "learned",
    vgg_weights: str | None = None,
    motion_weights: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg, rt = start(CONFIGS, config, device, precision)
    device = rt.device
    ds = SelfMEDataset(store_path, scheme, cache_dir=cache_dir)
    classes = ds.classes
    identity = {"method": "selfme", "config": cfg, "motion": motion, "weights": weights, "vgg_weights": vgg_weights,
                "motion_weights": motion_weights}  # fmt: skip
    check_identity(out, {**identity, "samples": list(ds.samples()["sample_id"])})  # before resuming motion learning
    loaded = {"weights": None, "vgg_weights": None}  # what the weight files gave (summary.json)
    if motion == "learned":
        learner = motion_learner(
            SelfMEDataset(store_path, scheme, train=True, seed=cfg["seed"], cache_dir=cache_dir),
            cfg,
            rt,
            out,
            log,
            progress,
            vgg_weights,
            motion_weights,
        )
        loaded["vgg_weights"] = learner.vgg_loaded
        onset_apex = torch.stack([ds[i]["pair"] for i in range(len(ds))]).to(device)  # test mode: onset, apex
        motions = {
            gm: learned_motion(learner, onset_apex, cfg["size"], gm).cpu()
            for gm in {cfg["gamma_train"], cfg["gamma_test"]}
        }
    else:
        if motion_weights:
            log(f"--motion-weights {motion_weights} not used: --motion tvl1 has no motion learner")
        flows = torch.from_numpy(
            np.stack([ds.array("pairs/flow_tvl1")[int(r["index"])].astype(np.float32) for r in ds.rows])
        ).permute(0, 3, 1, 2)
        motions = {gm: _motion(flows, cfg["size"], gm) for gm in {cfg["gamma_train"], cfg["gamma_test"]}}
    y = torch.from_numpy(ds.labels)
    log(
        f"SelfME (SCViT on {motion} motion): config {config}, device {device}, ViT-S/16 "
        + (f"from {weights}" if weights else "randomly initialised (no weights given; nothing is downloaded)")
    )
    rates = []

    def fold(tr, te, k):
        manual_seed(stream_seed(cfg["seed"], "fold", k))
        model = SCViT(len(classes), 2, weights, cfg["size"]).to(device)
        loaded["weights"] = loaded["weights"] or model.loaded
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, cfg.get("decay", 1.0))
        ck = EpochCheckpoint(out / "checkpoints" / f"fold_{k:03d}.pt", model=model, opt=opt, sched=sched)
        sampler = EpochSampler(tr, (cfg["seed"], "fold", k))  # the fold's own stream
        for ep in range(ck.resume(device), cfg["epochs"]):
            model.train()
            t0 = time.perf_counter()
            for keys in epoch_batches(sampler, ep, cfg["batch"], f"SCViT fold {k + 1} epoch {ep + 1}", progress):
                idx = [i for i, _ in keys]
                x = motions[cfg["gamma_train"]][idx].to(device)
                with rt.autocast():
                    logits, regions = model(x)
                    loss = scvit_loss(logits, regions, y[idx].to(device), cfg["omega"], cfg["tau"])
                step(opt, loss)
            sched.step()
            rates.append(len(tr) / (time.perf_counter() - t0))
            ck.save(ep + 1)
        model.eval()
        with torch.no_grad(), rt.autocast():
            pred = model(motions[cfg["gamma_test"]][te].to(device))[0].argmax(1).cpu().numpy()
        ck.discard()
        return pred

    summary = run_loso(
        ds.samples(),
        fold,
        classes,
        out,
        log,
        meta=lambda: {
            "method": "selfme",
            "config": config,
            "motion": motion,
            "train_samples_per_s": float(np.mean(rates)) if rates else None,
            **{f"{k}_loaded": loaded_counts(v) for k, v in loaded.items()},
        },
        identity=identity,
    )
    log_loaded(log, *loaded.values())
    return summary
