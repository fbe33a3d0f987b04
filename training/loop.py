"""The small pieces every training loop shares."""

from __future__ import annotations

import torch
from tqdm import tqdm

from training.samplers import EpochSampler


def data_loader(ds, sampler: EpochSampler, batch: int, workers: int, device: str, drop_last: bool = False):
    """A DataLoader of `ds` reading `sampler`'s keys `batch` at a time: `workers` worker
    processes (spawn context: forked workers can hang on Icechunk) started once and kept
    for every epoch of the loader, and batches in pinned memory when training on a CUDA
    device (copy them with `to_device`, which does not wait). With no workers, the main
    process reads."""
    kw = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda" and torch.cuda.is_available()}
    if workers:
        kw.update(multiprocessing_context="spawn", persistent_workers=True)
    return torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=drop_last, **kw)


def to_device(t: torch.Tensor, device: str) -> torch.Tensor:
    """`t` on `device`, copied asynchronously from pinned memory where it is pinned."""
    return t.to(device, non_blocking=True)


def epoch_batches(sampler: EpochSampler, epoch: int, batch: int, desc: str, progress: bool = True):
    """The keys of `sampler`'s epoch `epoch`, `batch` at a time (the last batch may be
    smaller), with a progress bar; for loops that index a Dataset or tensors directly."""
    sampler.set_epoch(epoch)
    yield from tqdm(sampler.batches(batch), desc=desc, disable=not progress, leave=False)


def step(opt, loss) -> None:
    """One optimiser step on `loss`."""
    opt.zero_grad()
    loss.backward()
    opt.step()
