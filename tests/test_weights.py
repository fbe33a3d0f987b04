"""Weight files in the formats people have (issue 16, items 5-6): wrapped or
DataParallel-prefixed checkpoints load; a file of which nothing fits, a TorchScript
archive or a non-state_dict is a clear error, never a run that continues on random
weights; what was loaded is counted."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from tests.fake_store import FakeStore
from training.weights import WeightsError, load_weights


def _resnet_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": {f"module.{k}": v for k, v in s.items()}},
    ],
)
def test_wrapped_and_prefixed_checkpoints_load_every_tensor(tmp_path, wrap):
    state = _resnet_state()
    torch.save(wrap(state), tmp_path / "w.pth")
    net = torchvision.models.resnet18(weights=None)
    got = load_weights(net, tmp_path / "w.pth", "ResNet18")
    assert (got.matched, got.missing, got.unexpected, got.shape_mismatch) == (len(state), 0, 0, 0)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_a_file_of_which_nothing_fits_is_an_error_naming_it(tmp_path):
    torch.save({"encoder.layer.0.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match=r"other\.pth: none of its 1 tensors fits ResNet18"):
        load_weights(torchvision.models.resnet18(weights=None), tmp_path / "other.pth", "ResNet18")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="holds list, not a state_dict"):
        load_weights(torchvision.models.resnet18(weights=None), tmp_path / "list.pth", "ResNet18")


def test_a_torchscript_archive_is_refused_with_what_to_do(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "clip.pt")
    with pytest.raises(WeightsError, match="TorchScript archive .* give the state_dict instead"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "clip.pt", "CLIP")


def test_torchvisions_vgg19_file_reaches_the_perceptual_loss(tmp_path):
    """Item 5: its 'features.' keys used to match nothing, silently."""
    from training.selfme.motion_learner import Perceptual

    torch.manual_seed(1)
    vgg = torchvision.models.vgg19(weights=None)
    torch.save(vgg.state_dict(), tmp_path / "vgg19.pth")
    p = Perceptual(str(tmp_path / "vgg19.pth"))
    assert p.loaded.matched == len(vgg.features.state_dict()) and p.loaded.missing == 0
    assert torch.equal(p.slices[0][0].weight, vgg.features[0].weight)


def test_a_timm_imagenet_vit_loads_into_the_two_channel_scvit(tmp_path):
    """Item 5: a 3-channel, 1000-class checkpoint used to crash on its shapes."""
    import timm

    from training.selfme.model import SCViT

    ref = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=1000)
    torch.save(ref.state_dict(), tmp_path / "vits.pth")
    m = SCViT(4, 2, str(tmp_path / "vits.pth"))
    # only the new head (eq. 15's MLP: two weights, two biases) is left as initialised
    assert m.loaded.shape_mismatch == 0 and m.loaded.missing == 4
    w = ref.state_dict()["patch_embed.proj.weight"]
    assert torch.allclose(m.vit.patch_embed.proj.weight, w.mean(1, keepdim=True).repeat(1, 2, 1, 1) * 1.5)
    assert torch.equal(m.vit.blocks[0].attn.qkv.weight, ref.blocks[0].attn.qkv.weight)


# --- a Hugging Face CLIP folder as MicroAUCLIP's --weights -------------------------------


def _open_clip(seed: int, embed: int = 32):
    """A small open_clip CLIP of MicroAUCLIP's kind (ViT/32 at 224, text context 77); a
    joint space narrower than the towers so the projections are not square."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    return CLIP(
        embed_dim=embed,
        vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=32, image_size=224),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
    ).eval()


# open_clip -> Hugging Face CLIPModel names, written from transformers' modeling_clip.py
# (CLIPVisionEmbeddings, CLIPEncoderLayer, CLIPModel): the inverse of what is tested.
_TO_HF = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
_BLOCK_TO_HF = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


def _to_hf(sd: dict) -> dict:
    """An open_clip state_dict under Hugging Face CLIPModel names and layouts."""
    import re

    hf = {
        "vision_model.embeddings.position_ids": torch.arange(50)[None],  # older checkpoints hold these buffers
        "text_model.embeddings.position_ids": torch.arange(77)[None],
        "visual_projection.weight": sd["visual.proj"].T.clone(),  # nn.Linear(width, embed).weight
        "text_projection.weight": sd["text_projection"].T.clone(),
    }
    for k, v in sd.items():
        m = re.fullmatch(r"(visual\.)?transformer\.resblocks\.(\d+)\.(.+)", k)
        if k in _TO_HF:
            hf[_TO_HF[k]] = v.clone()
        elif m:
            pre = f"{'vision_model' if m[1] else 'text_model'}.encoder.layers.{m[2]}."
            module, kind = m[3].rsplit(".", 1) if "in_proj" not in m[3] else ("attn.in_proj", m[3].split("_")[-1])
            if module == "attn.in_proj":  # (3 width, width): q, k, v rows in that order
                for name, part in zip(("q_proj", "k_proj", "v_proj"), v.split(v.shape[0] // 3)):
                    hf[f"{pre}self_attn.{name}.{kind}"] = part.clone()
            elif module == "attn.out_proj":
                hf[f"{pre}self_attn.out_proj.{kind}"] = v.clone()
            else:
                hf[f"{pre}{_BLOCK_TO_HF[module]}.{kind}"] = v.clone()
        else:
            assert k in ("visual.proj", "text_projection"), k
    return hf


def _features(model, tokens):
    torch.manual_seed(5)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        return model.encode_image(x), model.encode_text(tokens)


def _tokens():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")(["The eyebrows are lowering", "The chin is not raising"])


def test_a_hugging_face_clip_folder_loads_every_tensor_where_it_belongs(tmp_path):
    src = _open_clip(0)
    sd = src.state_dict()
    folder = tmp_path / "clip-vit-base-patch32"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip", "architectures": ["CLIPModel"]}))
    torch.save(_to_hf(sd), folder / "pytorch_model.bin")
    dst = _open_clip(1)
    assert not torch.equal(dst.state_dict()["visual.proj"], sd["visual.proj"])
    got = load_weights(dst, folder, "CLIP ViT-B/32")
    assert (got.matched, got.missing, got.unexpected, got.shape_mismatch) == (len(sd), 0, 0, 0)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    for a, b in zip(_features(src, _tokens()), _features(dst, _tokens())):
        assert torch.equal(a, b)


def test_a_transformers_clipmodel_folder_gives_the_same_features_in_open_clip(tmp_path):
    """The outside reference: transformers' own CLIPModel, saved by save_pretrained
    (model.safetensors), and its image/text features."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")

    tower = dict(hidden_size=64, intermediate_size=256, num_attention_heads=2, num_hidden_layers=2, hidden_act="gelu")
    cfg = transformers.CLIPConfig(
        text_config=dict(tower, max_position_embeddings=77, vocab_size=49408, eos_token_id=49407),
        vision_config=dict(tower, image_size=224, patch_size=32),
        projection_dim=32,
    )  # open_clip's ViT-B-32 (not -quickgelu) uses GELU
    torch.manual_seed(2)
    hf = transformers.CLIPModel(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    oc = _open_clip(3)
    got = load_weights(oc, tmp_path / "hf", "CLIP")
    assert (got.matched, got.missing, got.unexpected, got.shape_mismatch) == (len(oc.state_dict()), 0, 0, 0)
    torch.manual_seed(5)
    x, tokens = torch.randn(2, 3, 224, 224), _tokens()
    with torch.no_grad():
        img, txt = hf.get_image_features(pixel_values=x), hf.get_text_features(input_ids=tokens)
        img, txt = (getattr(o, "pooler_output", o) for o in (img, txt))  # transformers 5 wraps them
        assert torch.allclose(oc.encode_image(x), img, atol=1e-5)
        assert torch.allclose(oc.encode_text(tokens), txt, atol=1e-5)
    assert oc.logit_scale.item() == pytest.approx(hf.logit_scale.item())


def test_folders_that_are_not_a_hugging_face_clip_are_refused_naming_them(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match=r"empty is a folder without config.json: give a Hugging Face CLIP folder"):
        load_weights(_open_clip(0), tmp_path / "empty", "CLIP")
    bert = tmp_path / "bert-base"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, bert / "pytorch_model.bin")
    with pytest.raises(WeightsError, match=r"bert-base: a Hugging Face folder of model_type 'bert' \(BertModel\), not"):
        load_weights(_open_clip(0), bert, "CLIP")
    clip = tmp_path / "clip-no-weights"
    clip.mkdir()
    (clip / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (clip / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(WeightsError, match=r"clip-no-weights: a Hugging Face folder needs model.safetensors or "):
        load_weights(_open_clip(0), clip, "CLIP")


# --- what the weight files gave, in summary.json and the run's summary log ---------------


@pytest.fixture
def fake_store(monkeypatch):
    import numpy as np
    import pandas as pd

    import pipeline.store
    from schemas.arrays import ARRAYS

    g = np.random.default_rng(0)
    n = 6

    def arr(name, rows=n):
        return (g.random((rows, *ARRAYS[name].shape)) * 50).astype(ARRAYS[name].dtype)

    FakeStore.arrays = {a: arr(a) for a in ("pairs/rgb_diff", "pairs/gray_diff", "pairs/depth_diff", "pairs/flow_tvl1")}
    FakeStore.arrays["clips/frames72"] = arr("clips/frames72", 3 * n)
    FakeStore.manifest = pd.DataFrame(
        [
            {"sample_id": f"s{i}", "subject": f"p{i % 3}", "emotion": ("happy", "disgust")[i % 2], "index": i,
             "status": "ok", "reason": None, "source": "labelled", "clip_start": 3 * i, "clip_len": 3, "onset": 0,
             "apex": 2, **{f"fp_{p}": "f" * 32 for p in ("crop", "depth", "flow", "clip", "micro")}}
            for i in range(n)
        ]
    )  # fmt: skip
    monkeypatch.setattr(pipeline.store, "Store", FakeStore)
    return {"happiness": ["happy"], "disgust": ["disgust"]}


def _after_the_metrics(msgs: list[str], line: str) -> bool:
    """`line` is logged with the run's summary: after the pooled metrics."""
    metrics = max(i for i, m in enumerate(msgs) if "UF1" in m)
    return any(line in m for m in msgs[metrics + 1 :])


def test_dvscl_records_what_its_resnet_file_gave(fake_store, tmp_path, monkeypatch):
    from training.dvscl.configs import CONFIGS
    from training.dvscl.train import train_dvscl

    monkeypatch.setitem(CONFIGS, "tiny", {**CONFIGS["tiny"], "epochs": 1, "size": 32})
    state = _resnet_state()
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    msgs = []
    s = train_dvscl("st", fake_store, tmp_path / "out", "tiny", view="gray", weights=str(tmp_path / "r18.pth"),
                    log=msgs.append, progress=False)  # fmt: skip
    want = {"path": str(tmp_path / "r18.pth"), "matched": len(state), "missing": 0, "unexpected": 0,
            "shape_mismatch": 0, "what": "ResNet18"}  # fmt: skip
    assert s["weights_loaded"] == want
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["weights_loaded"] == want
    assert _after_the_metrics(msgs, f"ResNet18: loaded {len(state)} tensors from {tmp_path / 'r18.pth'} (0 missing")
    s = train_dvscl("st", fake_store, tmp_path / "out2", "tiny", view="gray", log=msgs.append, progress=False)
    assert s["weights_loaded"] is None


def test_selfme_records_what_its_vit_and_vgg_files_gave(fake_store, tmp_path, monkeypatch):
    import timm
    from torchvision.models.vgg import cfgs, make_layers

    from training.selfme.configs import CONFIGS
    from training.selfme.train import train_selfme

    small = {"size": 64, "epochs": 1, "motion_epochs": 1, "motion_pairs": 8}
    monkeypatch.setitem(CONFIGS, "tiny", {**CONFIGS["tiny"], **small})
    torch.manual_seed(0)
    vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=1000).state_dict()
    torch.save(vit, tmp_path / "vits.pth")
    vgg = make_layers(cfgs["E"]).state_dict()  # torchvision's vgg19().features, without its 120M-weight classifier
    torch.save({f"features.{k}": v for k, v in vgg.items()}, tmp_path / "vgg19.pth")
    msgs = []
    s = train_selfme("st", fake_store, tmp_path / "out", "tiny", weights=str(tmp_path / "vits.pth"),
                     vgg_weights=str(tmp_path / "vgg19.pth"), log=msgs.append, progress=False)  # fmt: skip
    # every tensor of the ImageNet ViT but its 1000-class head (2 tensors, dropped) and its position embedding
    # (1 + 14 x 14 tokens at 224 px, 1 + 4 x 4 in SCViT at 64 px); SCViT's own eq. 15 MLP head (4 tensors) and the
    # position embedding stay as initialised
    assert {k: s["weights_loaded"][k] for k in ("matched", "missing", "unexpected", "shape_mismatch")} == {
        "matched": len(vit) - 3, "missing": 5, "unexpected": 0, "shape_mismatch": 1}  # fmt: skip
    # VGG-19: 16 convolutions, weight and bias each
    assert s["vgg_weights_loaded"]["matched"] == 32 == len(vgg) and s["vgg_weights_loaded"]["missing"] == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["vgg_weights_loaded"]["matched"] == 32
    assert _after_the_metrics(msgs, f"VGG-19 features: loaded 32 tensors from {tmp_path / 'vgg19.pth'}")
    assert _after_the_metrics(msgs, f"SCViT (timm ViT-S/16): loaded {len(vit) - 3} tensors")


def test_the_clip_is_built_with_the_activation_its_weights_were_trained_with(tmp_path):
    """OpenAI's CLIP (the paper's) uses QuickGELU, x * sigmoid(1.702 x); a Hugging Face
    folder says its own in config.json."""
    from training.microauclip.model import MicroAUCLIP
    from training.weights import clip_activation

    gelu = tmp_path / "laion"
    gelu.mkdir()
    (gelu / "config.json").write_text(json.dumps({"model_type": "clip", "vision_config": {"hidden_act": "gelu"}}))
    openai = tmp_path / "openai"
    openai.mkdir()
    (openai / "config.json").write_text(json.dumps({"model_type": "clip", "vision_config": {}}))
    assert clip_activation(None) == clip_activation(tmp_path / "w.pt") == clip_activation(openai) == "quick_gelu"
    assert clip_activation(gelu) == "gelu"
    x = torch.linspace(-3, 3, 7)
    for act, want in (("quick_gelu", x * torch.sigmoid(1.702 * x)), ("gelu", torch.nn.functional.gelu(x))):
        mlp = MicroAUCLIP([4], activation=act).clip.visual.transformer.resblocks[0].mlp
        assert torch.allclose(mlp.gelu(x), want), act
