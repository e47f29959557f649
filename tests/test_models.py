"""The reference zoo: exact parameter counts, shapes, torchvision layouts, GoogLeNet aux heads, weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from edgecnn.errors import EdgecnnError
from edgecnn.models import (
    Inception,
    count_params,
    create_model,
    describe_all,
    get_spec,
    inference_params,
    list_models,
    load_weights,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_state_dicts.json").read_text())

# Totals derived layer by layer in the docstrings of edgecnn/models/*.py and below.
EXPECTED_PARAMS = {
    "lenet5": 156 + 2_416 + 48_120 + 10_164 + 850,
    "alexnet": 61_100_840,
    # seed 004 table, ungrouped: conv1..5 + fc6..8
    "alexnet_paper": (11 * 11 * 3 + 1) * 96 + (5 * 5 * 96 + 1) * 256 + (9 * 256 + 1) * 384 + (9 * 384 + 1) * 384
    + (9 * 384 + 1) * 256 + (6 * 6 * 256 + 1) * 4096 + 4097 * 4096 + 4097 * 1000,
    "zfnet": (7 * 7 * 3 + 1) * 96 + (5 * 5 * 96 + 1) * 256 + (9 * 256 + 1) * 384 + (9 * 384 + 1) * 384
    + (9 * 384 + 1) * 256 + (6 * 6 * 256 + 1) * 4096 + 4097 * 4096 + 4097 * 1000,
    "googlenet": 13_004_888,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "vgg11_lrn": 132_863_336,  # LRN has no parameters
    # config C = D with the third conv of blocks 3, 4, 5 made 1x1
    "vgg16_c": 138_357_544 - (9 - 1) * 256 * 256 - 2 * (9 - 1) * 512 * 512,
}


def test_registry_lists_every_model() -> None:
    assert set(list_models()) == set(EXPECTED_PARAMS)
    assert {r["name"] for r in describe_all()} == set(EXPECTED_PARAMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_exact_parameter_count(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert count_params(model) == EXPECTED_PARAMS[name]


def test_lenet_is_61706() -> None:
    assert EXPECTED_PARAMS["lenet5"] == 61_706


def test_googlenet_inference_params_match_aux_free_build() -> None:
    with torch.device("meta"):
        full, bare = create_model("googlenet"), create_model("googlenet", aux_logits=False)
    assert inference_params(full) == count_params(bare) == 6_624_904


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED_PARAMS if get_spec(n).torchvision_compatible))
def test_state_dict_layout_matches_torchvision(name: str) -> None:
    ref = FIXTURE["models"][name]
    with torch.device("meta"):
        model = create_model(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(ref["state_dict"])  # same keys, same order
    assert ours == ref["state_dict"]
    assert count_params(model) == ref["num_params"]


def test_fixture_recorded_identical_outputs() -> None:
    # tools/gen_torchvision_fixture.py loads torchvision's state dict strictly and compares outputs.
    assert FIXTURE["torchvision"].startswith("0.29")
    assert all(m["max_abs_diff_vs_edgecnn"] == 0.0 for m in FIXTURE["models"].values())


# Shapes at each model's native input size; heavy ones at batch 1 only.
@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_output_shape_at_native_input(name: str) -> None:
    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        y = model(torch.randn(1, *spec.input_shape))
    assert y.shape == (1, spec.num_classes)
    assert torch.isfinite(y).all()


ALEXNET_PAPER_SHAPES = [  # seed 004 table: output of each conv / pool / norm
    (96, 55, 55), (96, 27, 27), (96, 27, 27), (256, 27, 27), (256, 13, 13), (256, 13, 13),
    (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6),
]
ZFNET_SHAPES = [  # Zeiler & Fergus Fig. 3
    (96, 110, 110), (96, 55, 55), (96, 55, 55), (256, 26, 26), (256, 13, 13), (256, 13, 13),
    (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6),
]


@pytest.mark.parametrize("name,expected", [("alexnet_paper", ALEXNET_PAPER_SHAPES), ("zfnet", ZFNET_SHAPES)])
def test_per_layer_shapes_follow_the_spec(name: str, expected: list) -> None:
    model = create_model(name).eval()
    x = torch.randn(1, *get_spec(name).input_shape)
    shapes = []
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            if not isinstance(layer, nn.ReLU):
                shapes.append(tuple(x.shape[1:]))
    assert shapes == expected


def test_vgg_configs_follow_table() -> None:
    def convs(name: str) -> list[tuple[int, int]]:
        with torch.device("meta"):
            m = create_model(name)
        return [(c.out_channels, c.kernel_size[0]) for c in m.features if isinstance(c, nn.Conv2d)]

    assert len(convs("vgg11")) == 8 and len(convs("vgg13")) == 10
    assert len(convs("vgg16")) == 13 and len(convs("vgg19")) == 16
    assert [k for _, k in convs("vgg16_c")].count(1) == 3
    with torch.device("meta"):
        lrn = create_model("vgg11_lrn")
    assert isinstance(lrn.features[2], nn.LocalResponseNorm)


def test_googlenet_aux_outputs_only_in_training() -> None:
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=10)
    x = torch.randn(2, 3, 96, 96)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 3
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 10)
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 10)
    bare = create_model("googlenet", num_classes=10, aux_logits=False).train()
    assert isinstance(bare(x), torch.Tensor)
    assert bare.aux1 is None and bare.aux2 is None


def test_naive_inception_has_no_reductions() -> None:
    naive = Inception(256, 128, 0, 192, 0, 96, 0, ch5x5_kernel=5, naive=True, plain_conv=True)
    y = naive(torch.randn(1, 256, 28, 28))
    assert y.shape == (1, 128 + 192 + 96 + 256, 28, 28)  # the pooling branch passes 256 maps through
    convs = [m for m in naive.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (256, 128, 1), (256, 192, 3), (256, 96, 5)]


def test_deterministic_under_manual_seed() -> None:
    torch.manual_seed(123)
    a = create_model("resnet18").state_dict()
    torch.manual_seed(123)
    b = create_model("resnet18").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_spec_describes_model() -> None:
    m = create_model("lenet5")
    assert m.spec.input_shape == (1, 32, 32) and m.spec.num_classes == 10 and m.spec.family == "lenet"
    assert create_model("resnet18", num_classes=7).spec.num_classes == 7
    d = get_spec("googlenet").describe()
    assert d["torchvision_compatible"] and d["mean"] == [0.485, 0.456, 0.406] and d["train_only"] == ["aux1", "aux2"]


def test_unknown_model_suggests_closest() -> None:
    with pytest.raises(EdgecnnError, match="unknown model 'resnet19'.*resnet18"):
        create_model("resnet19")


# ------------------------------------------------------------------ weights


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "module."])
def test_load_weights_round_trip(tmp_path: Path, wrap: str | None) -> None:
    torch.manual_seed(0)
    src = create_model("lenet5").eval()
    state = src.state_dict()
    if wrap == "module.":
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {wrap: state} if wrap else state
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    torch.manual_seed(1)
    dst = create_model("lenet5", weights=str(path)).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_googlenet_checkpoint_with_aux_loads(tmp_path: Path) -> None:
    torch.save(create_model("googlenet").state_dict(), tmp_path / "g.pth")
    load_weights(create_model("googlenet"), tmp_path / "g.pth")
    with pytest.raises(EdgecnnError, match="unexpected keys: aux1"):
        load_weights(create_model("googlenet", aux_logits=False), tmp_path / "g.pth")


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path: Path) -> None:
    torch.save(create_model("lenet5", num_classes=5).state_dict(), tmp_path / "five.pth")
    with pytest.raises(EdgecnnError) as e:
        create_model("lenet5", weights=str(tmp_path / "five.pth"))
    msg = str(e.value)
    assert "shape mismatch" in msg and "classifier.3.weight" in msg and "(5, 84)" in msg and "\n" not in msg
    torch.save(create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(EdgecnnError, match=r"missing keys: features\.0\.weight.*unexpected keys: conv1\.weight"):
        create_model("lenet5", weights=str(tmp_path / "r18.pth"))


def test_bad_checkpoint_files(tmp_path: Path) -> None:
    with pytest.raises(EdgecnnError, match="not found"):
        create_model("lenet5", weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(EdgecnnError, match="cannot read weights"):
        create_model("lenet5", weights=str(junk))
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(EdgecnnError, match="no state dict"):
        create_model("lenet5", weights=str(tmp_path / "list.pth"))


class _Evil:
    def __reduce__(self):  # pickled code must never run
        return (exec, ("open('PWNED','w').write('x')",))


def test_pickled_code_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(EdgecnnError, match="cannot read weights"):
        create_model("lenet5", weights=str(tmp_path / "evil.pth"))
    assert not (tmp_path / "PWNED").exists()
