"""LPIPS: identical images give 0, shapes, linearity in the heads, and loading both weight files."""
import pytest
import torch

from components.evaluation.loaders import load_lpips, lpips_heads_path
from models.lpips import LPIPS, TAPS

ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def _fake_alexnet_file(path, seed=0):
    """A torchvision-format AlexNet checkpoint (features + classifier keys) with random weights."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (cout, cin, k) in ALEX_CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * 0.05
        sd[f"features.{i}.bias"] = torch.randn(cout, generator=gen) * 0.01
    sd["classifier.1.weight"] = torch.zeros(4, 9216)  # ignored by LPIPS (the real one is 4096 x 9216)
    torch.save(sd, path)
    return sd


def _fake_heads_file(path, channels, value=1.0):
    sd = {f"lin{i}.model.1.weight": torch.full((1, c, 1, 1), value) for i, c in enumerate(channels)}
    torch.save(sd, path)
    return sd


@pytest.fixture(scope="module")
def alex(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips")
    trunk = _fake_alexnet_file(folder / "alexnet-owt-7be5be79.pth")
    _fake_heads_file(folder / "alex.pth", TAPS["alex"][2])
    model, records = load_lpips(str(folder / "alexnet-owt-7be5be79.pth"), folder / "alex.pth", "alex")
    return model, trunk, records, folder


def test_both_files_load_into_the_right_parameters(alex):
    model, trunk, records, _ = alex
    for key, value in trunk.items():
        if key.startswith("features."):
            assert torch.equal(model.state_dict()[key], value), key
    assert torch.equal(model.lin2.model[1].weight, torch.ones(1, 384, 1, 1))
    assert [r.path.rsplit("/", 1)[-1] for r in records] == ["alexnet-owt-7be5be79.pth", "alex.pth"]
    assert all(len(r.sha256) == 64 for r in records)


def test_identical_images_are_at_distance_zero_and_shapes(alex):
    model = alex[0]
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        same = model(x, x)
        diff = model(x, x.flip(-1))
    assert same.shape == (3,) and torch.all(same == 0)
    assert torch.all(diff > 0)


def test_distance_is_linear_in_the_heads_and_symmetric(alex):
    model, _, _, folder = alex
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    doubled = LPIPS("alex")
    doubled.load_state_dict(model.state_dict())
    _fake_heads_file(folder / "alex2.pth", TAPS["alex"][2], value=2.0)
    doubled.load_heads(torch.load(folder / "alex2.pth"))
    with torch.no_grad():
        d1, d2, back = model(x, y), doubled(x, y), model(y, x)
    assert torch.allclose(d2, 2 * d1, rtol=1e-5)
    assert torch.allclose(back, d1, rtol=1e-5)


def test_wrong_shapes_and_missing_keys_name_the_file(tmp_path):
    model = LPIPS("alex")
    bad = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    bad["features.0.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"trunk.pth: features.0.weight has shape \(1,\)"):
        model.load_trunk(bad, "trunk.pth")
    del bad["features.10.bias"]
    with pytest.raises(KeyError, match="trunk.pth: missing features.10.bias"):
        model.load_trunk(bad, "trunk.pth")
    with pytest.raises(KeyError, match="heads.pth: missing lin0.model.1.weight"):
        model.load_heads({}, "heads.pth")


def test_vgg_trunk_takes_torchvision_vgg16_names():
    model = LPIPS("vgg")
    keys = [k for k in model.state_dict() if k.startswith("features.") and k.endswith(".weight")]
    # torchvision vgg16.features: 13 convs at these indices; LPIPS stops after relu5_3 (index 29)
    assert keys == [f"features.{i}.weight" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    assert model.state_dict()["features.28.weight"].shape == (512, 512, 3, 3)
    assert model.lin4.model[1].weight.shape == (1, 512, 1, 1)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)).shape == (1,)


def test_the_lpips_wheel_ships_heads_of_the_right_shapes():
    path = lpips_heads_path("alex")
    if path is None:
        pytest.skip("lpips wheel not installed (pip install --no-deps lpips==0.1.4)")
    model = LPIPS("alex")
    model.load_heads(torch.load(path, map_location="cpu", weights_only=True), str(path))
    assert float(model.lin0.model[1].weight.abs().sum()) > 0
