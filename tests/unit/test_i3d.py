"""InceptionI3d: pytorch-i3d key names, state-dict round trip through the loader, TorchScript dispatch, output shape."""
import pytest
import torch

from components.evaluation.loaders import is_torchscript, load_i3d
from models.i3d import MIXED, InceptionI3d, TorchScriptI3D, preprocess, same_pad


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return InceptionI3d().eval()


def test_state_dict_has_pytorch_i3d_names_and_shapes(model):
    sd = model.state_dict()
    # 3 stem units + 9 Inception blocks x 6 units, 6 tensors each (conv weight + 5 BN), + logits weight and bias
    assert len(sd) == (3 + 6 * len(MIXED)) * 6 + 2 == 344
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["Conv3d_2c_3x3.conv3d.weight"].shape == (192, 64, 3, 3, 3)
    assert sd["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert sd["Mixed_4b.b0.conv3d.weight"].shape == (192, 480, 1, 1, 1)
    assert sd["Mixed_5c.b3b.bn.running_var"].shape == (128,)
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert sd["logits.conv3d.bias"].shape == (400,)
    assert sum(p.numel() for p in model.parameters()) == 12_697_264  # pytorch-i3d's RGB I3D
    assert model.trunk[:6] == ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3",
                               "MaxPool3d_3a_3x3", "Mixed_3b"]
    assert model.trunk[-3:] == ["MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c"]


def test_state_dict_round_trips_through_the_loader(model, tmp_path):
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}  # an old file
    torch.save(sd, tmp_path / "i3d_pretrained_400.pt")
    loaded, record = load_i3d(str(tmp_path / "i3d_pretrained_400.pt"))
    assert isinstance(loaded, InceptionI3d) and not loaded.training
    for key, value in sd.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert len(record.sha256) == 64


def test_loader_names_the_file_on_a_wrong_state_dict(tmp_path):
    torch.save({"Conv3d_1a_7x7.conv3d.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: not a pytorch-i3d"):
        load_i3d(str(tmp_path / "bad.pt"))


class _FakeScript(torch.nn.Module):
    """StyleGAN-V's calling convention: features only when return_features, [0, 255] input when rescale."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1
        feats = x.mean(dim=(1, 2, 3, 4)).unsqueeze(1).repeat(1, 400)
        return feats if return_features else torch.softmax(feats, dim=1)


def test_torchscript_file_is_loaded_with_features_and_no_rescale(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(_FakeScript()), str(path))
    assert is_torchscript(path.read_bytes())
    model, _ = load_i3d(str(path))
    assert isinstance(model, TorchScriptI3D)
    x = torch.full((2, 3, 4, 8, 8), 0.25)
    out = model(x)
    assert out.shape == (2, 400)
    assert torch.allclose(out, torch.full((2, 400), 0.25))  # raw features, input taken as already in [-1, 1]


def test_same_padding_matches_tensorflow():
    # TF SAME: out = ceil(in / stride), total pad = max(k - (stride or in % stride), 0), odd pixel at the end
    assert same_pad((16, 224, 224), (7, 7, 7), (2, 2, 2)) == (2, 3, 2, 3, 2, 3)
    assert same_pad((8, 112, 112), (1, 3, 3), (1, 2, 2)) == (0, 1, 0, 1, 0, 0)
    assert same_pad((5, 7, 7), (3, 3, 3), (1, 1, 1)) == (1, 1, 1, 1, 1, 1)


def test_preprocess_resizes_the_short_side_and_crops():
    video = torch.linspace(-1, 1, 48).view(1, 1, 1, 1, 48).expand(2, 3, 4, 32, 48).contiguous()
    out = preprocess(video, size=16)
    assert out.shape == (2, 3, 4, 16, 16)
    # 32x48 -> 16x24, crop columns 4..19: the centre of a horizontal ramp stays centred
    assert abs(float(out[0, 0, 0, 0].mean())) < 1e-6


def test_too_short_clip_is_refused(model):
    with pytest.raises(ValueError, match=">= 9 frames"):
        model(torch.zeros(1, 3, 8, 224, 224))


@pytest.mark.slow
def test_logits_shape_at_the_convention(model):
    x = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        out = model(x)
        again = model(x[:1])
    assert out.shape == (2, 400)
    assert torch.allclose(out[:1], again, atol=1e-4)  # eval mode: no batch coupling
