"""Loading a user's local weight file into a module: the formats people have, and never
"loaded" when nothing was (issue 16, item 6).

A file is read with `torch.load(weights_only=True)` (no code runs); a checkpoint wrapped
as ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped, ``module.`` prefixes (a
DataParallel checkpoint) and the caller's `strip` prefixes are removed, and only tensors
whose name and shape fit the module are loaded. A file of which nothing fits is an
error naming the file, what it holds and what the module expects; a TorchScript archive
(OpenAI's CLIP ``.pt``) is refused with what to do instead.

A Hugging Face CLIP folder (config.json + model.safetensors or pytorch_model.bin, the
`CLIPModel` names) is read with its names converted to open_clip's (`hf_clip_to_open_clip`),
so it loads into an open_clip CLIP; another Hugging Face folder is refused, naming it.
"""

from __future__ import annotations

import json
import re
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
    what: str = ""  # the module, as the log names it

    def describe(self, what: str | None = None) -> str:
        return (
            f"{what or self.what}: loaded {self.matched} tensors from {self.path} ({self.missing} missing, "
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
    """The tensors of a weight file, unwrapped and with prefixes removed (a Hugging Face
    CLIP folder: its tensors under open_clip's names)."""
    path = Path(path)
    if path.is_dir():
        return read_hf_clip_folder(path)
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


HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_GIVE_INSTEAD = (
    "give a Hugging Face CLIP folder (config.json + model.safetensors or pytorch_model.bin) "
    "or a state_dict file saved with torch.save"
)


def _hf_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise WeightsError(f"{folder} is a folder without config.json: {HF_GIVE_INSTEAD}")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise WeightsError(f"{path}: not readable JSON ({e})") from e


def _hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of a Hugging Face folder's single weight file: model.safetensors when
    the safetensors package is installed, else pytorch_model.bin (weights_only)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    st, pt = (folder / f for f in HF_WEIGHT_FILES)
    if st.is_file() and load_file is not None:
        try:
            return load_file(str(st))
        except Exception as e:
            raise WeightsError(f"{st}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    if pt.is_file():
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as e:
            raise WeightsError(f"{pt}: not a weights file torch can read safely ({type(e).__name__}: {e})") from e
        if isinstance(state, dict):
            return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        raise WeightsError(f"{pt}: holds {type(state).__name__}, not a state_dict of tensors")
    why = "model.safetensors needs the safetensors package, not installed" if st.is_file() else "neither is there"
    raise WeightsError(
        f"{folder}: a Hugging Face folder needs {' or '.join(HF_WEIGHT_FILES)} in one file ({why}; "
        f"it holds {sorted(p.name for p in folder.iterdir())[:8]}): {HF_GIVE_INSTEAD}"
    )


def clip_activation(path: str | Path | None) -> str:
    """The MLP activation of the CLIP a weight file was trained with: a Hugging Face CLIP
    folder's `vision_config.hidden_act` (transformers' default: quick_gelu); for a
    state_dict file, or no file, "quick_gelu": OpenAI's CLIP, the one the papers use
    (open_clip builds its "-quickgelu" models for it; LAION's GELU models come as folders
    on the hub, with their activation in config.json)."""
    if path is not None and Path(path).is_dir():
        vision = _hf_config(Path(path)).get("vision_config") or {}
        return str(vision.get("hidden_act", "quick_gelu"))
    return "quick_gelu"


def read_hf_clip_folder(folder: Path) -> dict[str, torch.Tensor]:
    """A Hugging Face CLIP folder's tensors under open_clip's names; a folder of another
    model type is refused, naming it."""
    config = _hf_config(folder)
    kind = str(config.get("model_type", ""))
    if not kind.startswith("clip"):
        raise WeightsError(
            f"{folder}: a Hugging Face folder of model_type {kind!r} ({', '.join(config.get('architectures') or [])}), "
            f"not CLIP: only CLIP folders are converted; {HF_GIVE_INSTEAD}"
        )
    return hf_clip_to_open_clip(_hf_tensors(folder))


# Hugging Face CLIPModel name -> open_clip CLIP name (ViT towers): whole names, then the
# part after `<tower>.encoder.layers.<i>.`; the q/k/v projections are fused into in_proj.
_HF_CLIP_NAMES = {
    "logit_scale": "logit_scale",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",  # sic: Hugging Face's name
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}
_HF_CLIP_PROJECTIONS = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}
_HF_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}
_HF_CLIP_TOWER = {"vision_model": "visual.transformer.resblocks", "text_model": "transformer.resblocks"}
_HF_LAYER_NAME = re.compile(r"(vision_model|text_model)\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")


def hf_clip_to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face CLIPModel tensors -> open_clip CLIP names. Projections are nn.Linear
    weights (embed, width) in Hugging Face and (width, embed) matrices in open_clip
    (transposed); q, k, v (width, width) each become rows [0:w], [w:2w], [2w:3w] of
    attn.in_proj_weight (3 width, width), biases likewise. `position_ids` buffers are
    dropped; other names are kept as they are (the loader counts them as unexpected)."""
    out, qkv = {}, {}
    for k, v in state.items():
        if k.endswith("embeddings.position_ids"):
            continue
        m = _HF_LAYER_NAME.fullmatch(k)
        if k in _HF_CLIP_NAMES:
            out[_HF_CLIP_NAMES[k]] = v
        elif k in _HF_CLIP_PROJECTIONS:
            out[_HF_CLIP_PROJECTIONS[k]] = v.t().contiguous()
        elif m and m[3] in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            qkv.setdefault((m[1], m[2], m[4]), {})[m[3][-6]] = (k, v)
        elif m and m[3] in _HF_CLIP_LAYER:
            out[f"{_HF_CLIP_TOWER[m[1]]}.{m[2]}.{_HF_CLIP_LAYER[m[3]]}.{m[4]}"] = v
        else:
            out[k] = v
    for (tower, layer, kind), parts in qkv.items():
        if set(parts) == {"q", "k", "v"}:
            out[f"{_HF_CLIP_TOWER[tower]}.{layer}.attn.in_proj_{kind}"] = torch.cat([parts[c][1] for c in "qkv"])
        else:  # an incomplete triple cannot be fused: left under its own names
            out.update(dict(parts.values()))
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
    return Loaded(str(path), len(fit), len(own) - len(fit), unexpected, len(other_shape), what)


def loaded_counts(loaded: Loaded | None) -> dict | None:
    """summary.json's record of a weight file (`weights_loaded`, ...): path, matched,
    missing, unexpected, shape_mismatch, what; None when no file was given (or loaded)."""
    return None if loaded is None else loaded.as_dict()


def log_loaded(log, *loaded: Loaded | None) -> None:
    """The run summary's line for each weight file loaded (module, file, counts)."""
    for got in loaded:
        if got is not None:
            log(got.describe())
