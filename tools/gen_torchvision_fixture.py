"""Regenerate tests/fixtures/torchvision_state_dicts.json from torchvision (key -> shape per model).

torchvision is not an edgecnn dependency. Run this in a throwaway venv (works offline here):

    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/python tools/gen_torchvision_fixture.py

Every zoo model marked ``torchvision_compatible`` is covered: the classic ones (AlexNet, GoogLeNet, ResNet,
VGG) and the mobile ones (MobileNetV2/V3, EfficientNet-B0, SqueezeNet, ShuffleNetV2, MnasNet, RegNetY-400MF).
Besides the layouts it loads each torchvision model's (randomly initialised, seeded) state dict into the
edgecnn model with ``strict=True`` and records the max abs difference of their eval-mode outputs on one input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torchvision
from torchvision import models as tvm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecnn.models import create_model, get_spec, list_models  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "torchvision_state_dicts.json"


def main() -> None:
    fixture: dict = {"torchvision": torchvision.__version__, "torch": torch.__version__, "models": {}}
    for name in list_models(task="classification"):
        if not get_spec(name).torchvision_compatible:
            continue
        torch.manual_seed(0)
        tv = getattr(tvm, name)(weights=None).eval()
        ours = create_model(name).eval()
        ours.load_state_dict(tv.state_dict(), strict=True)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            diff = (tv(x) - ours(x)).abs().max().item()
        fixture["models"][name] = {
            "num_params": sum(p.numel() for p in tv.parameters()),
            "max_abs_diff_vs_edgecnn": diff,
            "state_dict": {k: list(v.shape) for k, v in tv.state_dict().items()},
        }
        print(f"{name:20s} params={fixture['models'][name]['num_params']:>12,}  max|diff|={diff:.3g}")
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
