"""Weight files in the formats people have (issue 16, items 5-6): wrapped or
DataParallel-prefixed checkpoints load; a file of which nothing fits, a TorchScript
archive or a non-state_dict is a clear error, never a run that continues on random
weights; what was loaded is counted."""

from __future__ import annotations

import pytest
import torch
import torchvision

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
