"""Loading a user's local weight file into a module: the formats people have, and never
"loaded" when nothing was (issue 16, item 6).

A file is read with `torch.load(weights_only=True)` (no code runs); a checkpoint wrapped
as ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped, ``module.`` prefixes (a
DataParallel checkpoint) and the caller's `strip` prefixes are removed, and only tensors
whose name and shape fit the module are loaded. A file of which nothing fits is an
error naming the file, what it holds and what the module expects; a TorchScript archive
(OpenAI's CLIP ``.pt``) is refused with what to do instead.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    pass


@dataclass(frozen=True)
class Loaded:
    """What a weight file gave a module: counts for the log and the run summary."""

    path: str
    matched: int
    missing: int  # module tensors the file does not hold (left as initialised)
    unexpected: int  # file tensors the module does not have (ignored)
    shape_mismatch: int  # same name, other shape (ignored)

    def describe(self, what: str) -> str:
        return (
            f"{what}: loaded {self.matched} tensors from {self.path} ({self.missing} missing, "
            f"{self.unexpected} unexpected, {self.shape_mismatch} of another shape)"
        )

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_state_dict(path: str | Path, strip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, unwrapped and with prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights {path} not found (a local file; nothing is downloaded)")
    if _is_torchscript(path):
        raise WeightsError(
            f"{path} is a TorchScript archive (e.g. OpenAI's CLIP .pt), which cannot be loaded without running "
            "its code: give the state_dict instead (open_clip: the model's state_dict saved with torch.save)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: not a weights file torch can read safely ({type(e).__name__}: {e})") from e
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds {type(state).__name__}, not a state_dict of tensors")
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in ("module.", *strip):
            if k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def load_weights(module: nn.Module, path: str | Path, what: str, strip: tuple[str, ...] = (), state=None) -> Loaded:
    """Load what fits of the weight file `path` into `module` (see the module docstring);
    `state`: the file's tensors already read (and adapted) by the caller."""
    state = read_state_dict(path, strip) if state is None else state
    own = module.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    other_shape = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if not fit:
        raise WeightsError(
            f"{path}: none of its {len(state)} tensors fits {what} (file: {sorted(state)[:3]}...; "
            f"{what} expects: {sorted(own)[:3]}...{' ; other shapes: ' + str(other_shape[:3]) if other_shape else ''})"
        )
    module.load_state_dict(fit, strict=False)
    unexpected = len([k for k in state if k not in own])
    return Loaded(str(path), len(fit), len(own) - len(fit), unexpected, len(other_shape))
