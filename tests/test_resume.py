"""Reproducible resume and per-item random streams (issue 16, items 2 and 7), against
independent references: a run killed mid-epoch and resumed equals the uninterrupted run
bit for bit; DataLoader workers draw what the main process draws, differently every
epoch; the batched crop equals scipy's bilinear sampling of the documented formula."""

import random

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from training.augment import augment_batch, crop_flip_theta, resample
from training.checkpoint import EpochCheckpoint, restore_rng, rng_state
from training.loop import data_loader, step
from training.runtime import stream_seed
from training.samplers import EpochSampler, item_rng


def _draws():
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        np.random.randn(1).tolist(),
        [random.random() for _ in range(3)],
    )


def test_every_global_generator_is_saved_and_restored():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn(1)  # a cached gaussian is part of numpy's state
    st = rng_state()
    want = _draws()
    assert _draws() != want  # the generators moved on
    restore_rng(st)
    assert _draws() == want


def test_streams_are_stable_and_distinct():
    assert stream_seed(0, "fold", 3) == stream_seed(0, "fold", 3)
    seeds = {stream_seed(0, "fold", k, e) for k in range(20) for e in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    # a known value: the stream of a run does not change between versions or machines
    assert stream_seed(0) == int(np.random.SeedSequence([0]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def test_the_sampler_draws_a_new_epoch_each_time_and_the_same_epoch_again():
    s = EpochSampler(np.arange(10, 30), (0, "fold", 1))
    e0 = s.keys()
    s.set_epoch(1)
    e1 = s.keys()
    assert sorted(i for i, _ in e0) == list(range(10, 30))  # a permutation of the given indices
    assert [i for i, _ in e0] != [i for i, _ in e1] and {k for _, k in e0}.isdisjoint({k for _, k in e1})
    s.set_epoch(0)
    assert s.keys() == e0
    assert EpochSampler(np.arange(10, 30), (0, "fold", 2)).keys() != e0  # another fold, another stream
    assert [len(b) for b in s.batches(8)] == [8, 8, 4] and [len(b) for b in s.batches(8, drop_last=True)] == [8, 8]


def test_replication_factors_repeat_each_class():
    labels = np.array([0] * 100 + [1] * 100 + [2] * 100)
    s = EpochSampler(
        np.arange(300), (0,), labels, ["positive", "surprise", "negative"], {"positive": 4.0, "surprise": 1.5}
    )
    counts = np.bincount(labels[[i for i, _ in s.keys()]], minlength=3)
    assert counts[0] == 400 and counts[2] == 100 and 120 < counts[1] < 180


class Draws(torch.utils.data.Dataset):
    """What a training Dataset draws for an item (FDP's random offset, crop and flip)."""

    def __len__(self):
        return 12

    def __getitem__(self, key):
        i, rng = item_rng(key, True, 0)
        return torch.tensor([i, *rng.integers(0, 10**9, 3)])


@pytest.mark.slow
def test_worker_processes_draw_what_the_main_process_draws_and_anew_each_epoch():
    """The defect this replaces: each worker held a copy of one generator, so the workers
    drew the same augmentations, and again every epoch (workers restart with the copy)."""

    def epochs(workers):
        s = EpochSampler(range(12), (0, "fold", 0))
        dl = data_loader(Draws(), s, 4, workers, "cpu")
        out = []
        for e in range(2):
            s.set_epoch(e)
            out.append(torch.cat(list(dl)))
        return out

    main, work = epochs(0), epochs(2)
    for a, b in zip(main, work):
        assert torch.equal(a, b)
    draws = main[0][:, 1:]
    assert len({tuple(r) for r in draws.tolist()}) == 12  # every item its own draw
    by_item = [{tuple(e[e[:, 0] == i][0, 1:].tolist()) for e in main} for i in range(12)]
    assert all(len(d) == 2 for d in by_item)  # each item drawn anew in the second epoch


class Noisy(torch.utils.data.Dataset):
    def __init__(self):
        g = np.random.default_rng(0)
        self.x = g.normal(size=(40, 6)).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int64)

    def __len__(self):
        return 40

    def __getitem__(self, key):
        i, rng = item_rng(key, True, 0)
        x = self.x[i] + rng.normal(0, 0.1, 6).astype(np.float32)  # an augmentation
        return torch.from_numpy(x), torch.tensor(self.y[i])


def _train(ckpt, losses, kill_at=None, epochs=3):
    """A loop written like the trainers': init, checkpoint resume, sampler epochs,
    dropout (torch's global generator), one checkpoint per epoch."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ck = EpochCheckpoint(ckpt, model=model, opt=opt)
    sampler = EpochSampler(range(40), (0, "fold", 0))
    loader = data_loader(Noisy(), sampler, 8, 0, "cpu")
    for epoch in range(ck.resume(), epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            if kill_at is not None and len(losses) == kill_at:
                raise KeyboardInterrupt
            losses.append(loss.item())
            step(opt, loss)
        ck.save(epoch + 1)
    return model


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result_bit_for_bit(tmp_path):
    full: list[float] = []
    want = _train(tmp_path / "a.pt", full)
    first: list[float] = []
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b.pt", first, kill_at=7)  # epoch 2 (5 steps per epoch), step 3
    resumed: list[float] = []
    got = _train(tmp_path / "b.pt", resumed)
    assert first == full[:7] and resumed == full[5:]  # epoch 2 again, then on, identical
    for a, b in zip(want.state_dict().values(), got.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.part"))


def test_without_the_saved_generators_the_resumed_run_differs(tmp_path):
    """The test above can fail: resuming with torch's generator not restored (dropout)
    gives other losses."""
    full: list[float] = []
    _train(tmp_path / "a.pt", full)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b.pt", [], kill_at=7)
    st = torch.load(tmp_path / "b.pt", weights_only=True)
    st["rng"]["torch"] = torch.manual_seed(123).get_state()
    torch.save(st, tmp_path / "b.pt")
    resumed: list[float] = []
    _train(tmp_path / "b.pt", resumed)
    assert resumed != full[5:]


def test_the_batched_crop_samples_where_the_formula_says():
    """Output pixel j of S reads input pixel left + (j + 0.5) w / S - 0.5 (bilinear, edges
    clamped), mirrored when flipped: scipy's map_coordinates of those points."""
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 50, 60)).astype(np.float32)
    boxes, flips, size = [(3, 5, 30, 40), (0, 0, 50, 60), (10, 7, 21, 33)], [False, True, False], 24
    out = resample(torch.from_numpy(x), crop_flip_theta(boxes, flips, 50, 60), size).numpy()
    j = np.arange(size)
    for n, ((top, left, h, w), flip) in enumerate(zip(boxes, flips)):
        ys = top + (j + 0.5) * h / size - 0.5
        xs = left + (j + 0.5) * w / size - 0.5
        xs = xs[::-1] if flip else xs
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        for c in range(2):
            ref = map_coordinates(x[n, c], [yy.clip(0, 49), xx.clip(0, 59)], order=1)
            np.testing.assert_allclose(out[n, c], ref, atol=2e-5)


def test_augmentation_shares_the_crop_between_views_and_depends_only_on_the_generator():
    view = torch.rand(4, 1, 40, 40)
    rgb = view.expand(-1, 3, -1, -1).clone()
    a_rgb, a_view = augment_batch(rgb, view, 16, torch.Generator().manual_seed(5), jitter=0.0, p_gray=0.0)
    assert a_rgb.shape == (4, 3, 16, 16) and a_view.shape == (4, 1, 16, 16)
    assert torch.allclose(a_rgb[:, :1], a_view)  # the same crop and flip on both views
    b_rgb, _ = augment_batch(rgb, view, 16, torch.Generator().manual_seed(5), jitter=0.0, p_gray=0.0)
    c_rgb, _ = augment_batch(rgb, view, 16, torch.Generator().manual_seed(6), jitter=0.0, p_gray=0.0)
    assert torch.equal(a_rgb, b_rgb) and not torch.equal(a_rgb, c_rgb)
    gray, _ = augment_batch(torch.rand(64, 3, 8, 8), torch.rand(64, 1, 8, 8), 8, torch.Generator().manual_seed(0))
    is_gray = (gray.std(1) < 1e-6).flatten(1).all(1)
    assert 3 <= int(is_gray.sum()) <= 25  # grayscale with probability 0.2
