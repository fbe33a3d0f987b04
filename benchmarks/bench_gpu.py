"""Training throughput of every method at the paper's shapes, on a GPU or the CPU (issue 16, item 2).

    make bench-gpu                                   # needs `make preprocess` (the demo store) first
    .venv/bin/python benchmarks/bench_gpu.py --steps 30 --precision fp32,bf16 --device cuda

Each method's real trainer (training.registry.train) runs its 'paper' config - the
paper's input sizes, batch sizes and networks - on the demo store and is stopped after
`--warmup` untimed and `--steps` timed optimiser steps. A step's time is the wall time
from the end of one optimiser step to the end of the next: reading the batch, moving it
to the device, augmentation, forward, backward, update (CUDA synchronised). Printed per
method and precision: steps/s, samples/s (the config's batch, or the training set when
smaller), peak memory (GPU: torch's peak allocated; CPU: the process's peak resident
size) and, with two precisions, the ratio. Every measurement runs in its own process, so
peaks are its own. The phase timed is the trainer's first loop: DVSCL's pretraining,
SelfME's motion learner ("motion learned") and its SCViT ("motion tvl1"), FDP's and
MicroAUCLIP's first fold, AttrCL's first split run.

On the CPU the default is a handful of steps (`--steps 3`), which keeps the script alive
in CI (tests/test_e2e_motion.py runs `measure` on the test store); on a GPU use more.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (row name, method, method options): the loops timed
ROWS = [
    ("dvscl (pretraining)", "dvscl", {}),
    ("selfme (motion learner)", "selfme", {"motion": "learned"}),
    ("selfme (SCViT)", "selfme", {"motion": "tvl1"}),
    ("fdp", "fdp", {}),
    ("attrcl", "attrcl", {"protocol": "split"}),
    ("microauclip", "microauclip", {}),
]


class Enough(Exception):
    """Raised from the timed optimiser step once enough steps are measured."""


def samples_per_step(name: str, options: dict, cfg: dict, subjects: list[str]) -> int:
    """The batch of the timed loop's first steps: the motion learner's 8 pairs, else the
    config's batch bounded by the loop's training set (`subjects`: one per sample the
    method's Dataset holds): every sample for DVSCL's pretraining, the training subjects'
    of the first split run (AttrCL) or of the first LOSO fold (the others)."""
    from training.splits import subject_split

    if name == "selfme" and options.get("motion") == "learned":
        return 8
    if name == "dvscl":
        n = len(subjects)
    elif name == "attrcl" and options.get("protocol") == "split":
        n = len(subject_split(subjects, 0.6, seed=cfg["seed"])[0])
    else:
        n = sum(s != min(subjects) for s in subjects)
    return min(cfg["batch"], n)


def measure(
    name: str,
    store,
    scheme: dict,
    options: dict | None = None,
    config: str = "paper",
    steps: int = 3,
    warmup: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    workers: int | None = None,
    out: Path | None = None,
) -> dict:
    """Run method `name`'s trainer until `warmup` + `steps` optimiser steps are done; the
    timings (see the module docstring). `workers`: DataLoader workers instead of the
    config's."""
    import torch

    from training.registry import get_method, train

    module = importlib.import_module(f"training.{name}.train")
    configs = importlib.import_module(f"training.{name}.configs").CONFIGS
    cuda = torch.device(device).type == "cuda"
    ends: list[float] = []
    real_step = module.step

    def timed_step(opt, loss):
        real_step(opt, loss)
        if cuda:
            torch.cuda.synchronize()
        ends.append(time.perf_counter())
        if len(ends) > warmup + steps:
            raise Enough

    opts = {o.name: o.default for o in get_method(name).options} | (options or {})
    cfg = dict(configs[config]) | ({"workers": workers} if workers is not None and "workers" in configs[config] else {})
    out = Path(out or tempfile.mkdtemp(prefix=f"bench-gpu-{name}-"))
    old_cfg, module.step = configs[config], timed_step
    configs[config] = cfg
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    subjects: list[str] = []
    try:
        from schemas.tables import SOURCES  # DVSCL pretrains on every source

        kw = {"sources": SOURCES} if name == "dvscl" else {}
        subjects = get_method(name).dataset_class()(store, scheme, **kw).subjects
        train(name, store, scheme, out, config, opts, progress=False, log=lambda *a: None, device=device,
              precision=precision)  # fmt: skip
    except Enough:
        pass
    finally:
        configs[config], module.step = old_cfg, real_step
    timed = len(ends) - 1 - warmup
    if timed < 1:
        raise RuntimeError(f"{name}: the trainer finished after {len(ends)} steps; give fewer --warmup/--steps")
    sps = timed / (ends[-1] - ends[warmup])
    batch = samples_per_step(name, opts, cfg, subjects)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"steps": timed, "steps_per_s": sps, "samples_per_step": batch, "samples_per_s": sps * batch,
            "peak_mib": peak, "memory": "GPU peak allocated" if cuda else "process peak RSS"}  # fmt: skip


def _one(args) -> None:
    """--one: a single measurement in this process, printed as JSON (for the parent)."""
    from pipeline.catalog import load_catalog

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    store = args.store or cat.store_root / args.dataset
    row = next(r for r in ROWS if r[0] == args.one)
    res = measure(row[1], store, ds.scheme, row[2], args.config, args.steps, args.warmup, args.device,
                  args.precision, args.workers)  # fmt: skip
    print("RESULT " + json.dumps(res))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", default="catalog.yaml")
    p.add_argument("--dataset", default="demo")
    p.add_argument("--store", default=None, help="a store path (default: the catalog's store of --dataset)")
    p.add_argument("--config", default="paper")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--precision", default=None, help="comma-separated: fp32,bf16 (default: both on CUDA, fp32 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 on CUDA, 1 on CPU)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the config's)")
    p.add_argument("--methods", default=None, help="comma-separated row names or methods (default: all)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = args.device == "cuda"
    args.steps = args.steps or (30 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if args.one:
        _one(args)
        return
    precisions = (args.precision or ("fp32,bf16" if gpu else "fp32")).split(",")
    wanted = set(args.methods.split(",")) if args.methods else None
    rows = [r for r in ROWS if wanted is None or r[0] in wanted or r[1] in wanted]
    dev = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"training throughput, config {args.config}, {dev}, {args.warmup} + {args.steps} steps, dataset {args.dataset}"
    )
    print(f"{'loop':26s} {'prec':5s} {'steps/s':>8s} {'samples/s':>10s} {'batch':>6s} {'peak MiB':>9s}  {'x fp32':>6s}")
    for label, _, _ in rows:
        base = None
        for prec in precisions:
            cmd = [sys.executable, __file__, "--one", label, "--precision", prec, "--catalog", args.catalog,
                   "--dataset", args.dataset, "--config", args.config, "--device", args.device,
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]  # fmt: skip
            cmd += ["--store", args.store] if args.store else []
            cmd += ["--workers", str(args.workers)] if args.workers is not None else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode or not lines:
                err = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{label:26s} {prec:5s} failed: {err}")
                continue
            r = json.loads(lines[-1][len("RESULT ") :])
            base = r["samples_per_s"] if base is None else base
            print(f"{label:26s} {prec:5s} {r['steps_per_s']:8.2f} {r['samples_per_s']:10.1f} {r['samples_per_step']:6d} "
                  f"{r['peak_mib']:9.0f}  {r['samples_per_s'] / base:6.2f}")  # fmt: skip
    print("peak memory: " + ("torch's peak allocated on the GPU" if gpu else "the process's peak resident size"))


if __name__ == "__main__":
    main()
