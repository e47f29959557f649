"""The reference zoo: exact parameter counts, shapes, torchvision layouts, GoogLeNet aux heads, weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from edgecnn.errors import EdgecnnError
from edgecnn.models import (
    GROUPS,
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
    # mobile group: torchvision 0.29.1's weight metadata ("num_params"), also in the layout fixture
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "efficientnet_b0": 5_288_548,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
    "mnasnet0_5": 2_218_512,
    "mnasnet1_0": 4_383_312,
    "regnet_y_400mf": 4_344_144,
}
MOBILE = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_0",
          "squeezenet1_1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "mnasnet0_5", "mnasnet1_0", "regnet_y_400mf"]


#: detectors and segmenters built by torchvision's builders (tests/test_tasks_zoo.py)
TASK_PARAMS = {"ssdlite320_mobilenet_v3_large": 3_440_060, "deeplabv3_mobilenet_v3_large": 11_025_477,
               "lraspp_mobilenet_v3_large": 3_221_538,
               # the shapes task's small detector and segmenter (edgecnn/models/shapes.py)
               "shapes_ssd": 175_628, "shapes_lraspp": 61_410}


def test_registry_lists_every_model() -> None:
    assert set(list_models()) == set(EXPECTED_PARAMS) | set(TASK_PARAMS)
    assert {r["name"] for r in describe_all()} == set(EXPECTED_PARAMS) | set(TASK_PARAMS)
    assert set(list_models(task="classification")) == set(EXPECTED_PARAMS)
    assert {r["name"]: r["num_params"] for r in describe_all(group="tasks")} == TASK_PARAMS


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_exact_parameter_count(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert count_params(model) == EXPECTED_PARAMS[name]


def test_groups_list_classic_and_mobile_apart() -> None:
    assert GROUPS == ("classic", "mobile", "tasks")
    assert sorted(list_models(group="mobile")) == sorted(MOBILE)
    assert set(list_models(group="classic")) == set(EXPECTED_PARAMS) - set(MOBILE)
    assert list_models() == list_models(group="classic") + list_models(group="mobile") + list_models(group="tasks")
    assert list_models("mobilenet") == ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
    assert list_models("mobilenet", group="classic") == []


def test_describe_all_rows_carry_group_params_and_gmacs() -> None:
    rows = describe_all()
    assert [r["name"] for r in rows] == list_models()
    by_name = {r["name"]: r for r in rows}
    v3 = by_name["mobilenet_v3_small"]
    assert v3["group"] == "mobile" and v3["family"] == "mobilenet" and v3["torchvision_compatible"]
    assert v3["num_params"] == v3["inference_params"] == 2_542_856
    assert v3["macs"] == get_spec("mobilenet_v3_small").macs and v3["gmacs"] == v3["macs"] / 1e9
    assert by_name["vgg16"]["group"] == "classic" and by_name["vgg16"]["gmacs"] == 15.47026432
    assert [r["name"] for r in describe_all(group="mobile")] == list_models(group="mobile")


def _torch_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """MACs of Conv2d/Linear by forward hooks on the meta device (no memory, no arithmetic)."""
    total = [0]

    def hook(mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total[0] += out.numel() * mod.in_features

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, *shape, device="meta"))
    return total[0]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_spec_macs_match_a_count_in_torch(name: str) -> None:
    # the table behind `edgecnn list`; tests/test_export_mobile.py checks the mobile ones against the ONNX graph
    # and torchvision's documented figures
    with torch.device("meta"):
        model = create_model(name).eval()
    assert get_spec(name).macs == _torch_macs(model, get_spec(name).input_shape)


@pytest.mark.parametrize("name", list_models())
def test_builder_is_explicit_and_cites_paper_and_parameter_count(name: str) -> None:
    spec = get_spec(name)
    doc = spec.builder.__doc__ or ""
    assert spec.builder.__name__ == name and "\n" not in doc.strip()
    with torch.device("meta"):
        n = count_params(create_model(name))
    assert f"{n:,} param" in doc or f"{n:,} with" in doc, doc
    assert re.search(r"\b(19|20)\d\d\b", doc) and re.search(r"\b(19|20)\d\d\b", spec.reference)
    assert not re.search(r"\b(seeds?|lectures?)\b", spec.reference + doc + spec.notes, re.IGNORECASE)


def test_stochastic_depth_only_in_training() -> None:
    from edgecnn.models.blocks import StochasticDepth

    sd = StochasticDepth(0.5)
    x = torch.ones(4000, 3, 2, 2)
    assert torch.equal(sd.eval()(x), x)
    torch.manual_seed(0)
    y = sd.train()(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # whole samples dropped, survivors scaled by 1/(1-p)
    assert (per_sample == per_sample[:, :1]).all()
    assert 0.45 < (per_sample[:, 0] == 0).float().mean().item() < 0.55
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", num_classes=10).eval()
    probs = [m.stochastic_depth.p for m in model.modules() if getattr(m, "stochastic_depth", None) is not None]
    assert len(probs) == 16 and probs[0] == 0.0 and probs[-1] == pytest.approx(0.2 * 15 / 16)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # deterministic at inference


def test_mobile_blocks_follow_their_tables() -> None:
    with torch.device("meta"):
        v3 = create_model("mobilenet_v3_small")
        mnas = create_model("mnasnet0_5")
        regnet = create_model("regnet_y_400mf")
    bn = v3.features[0][1]
    assert (bn.eps, bn.momentum) == (0.001, 0.01)
    assert isinstance(v3.features[0][2], nn.Hardswish)
    se = v3.features[1].block[1]  # first bneck of Table 2: SE on 16 channels, squeezed to make_divisible(16 // 4)
    assert (se.fc1.in_channels, se.fc1.out_channels) == (16, 8) and isinstance(se.scale_activation, nn.Hardsigmoid)
    assert mnas.layers[1].momentum == pytest.approx(1 - 0.9997)
    assert [mnas.layers[i].out_channels for i in (0, 6)] == [16, 8]  # alpha 0.5: 32 -> 16, 16 -> 8
    widths = [stage[0].f.c[0].out_channels for stage in regnet.trunk_output]
    groups = [stage[0].f.b[0].groups for stage in regnet.trunk_output]
    assert widths == [48, 104, 208, 440] and groups == [w // 8 for w in widths]
    assert [len(stage) for stage in regnet.trunk_output] == [1, 3, 6, 6]


def test_channel_shuffle_interleaves_groups() -> None:
    from edgecnn.models.shufflenet import channel_shuffle

    x = torch.arange(6.0).reshape(1, 6, 1, 1).repeat(2, 1, 1, 1)
    assert channel_shuffle(x, 2)[:, :, 0, 0].tolist() == [[0, 3, 1, 4, 2, 5]] * 2


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
