"""Helpers for the quantization tests: load ``tools/digits.py`` (not a package) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def digits_tools() -> ModuleType:
    """``tools/digits.py`` imported once (training loop, dataset writer, export, chain)."""
    if "edgecnn_tools_digits" in sys.modules:
        return sys.modules["edgecnn_tools_digits"]
    spec = importlib.util.spec_from_file_location("edgecnn_tools_digits", TOOLS / "digits.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["edgecnn_tools_digits"] = module
    spec.loader.exec_module(module)
    return module


def mobile_digits_net(folder: Path, *, epochs: int = 8, seed: int = 0, spread: float = 16.0) -> dict:
    """A small mobile-style net (Sandler et al. 2018 inverted residuals with depthwise 3x3 convolutions, Hu et al.
    2018 squeeze-and-excitation with hard-sigmoid, Howard et al. 2019 hard-swish; ~7,000 parameters) trained on
    scikit-learn's digits (``edgecnn.tasks.digits`` split and preprocessing), its depthwise channels spread in range
    by ``spread`` (see ``tests/test_quantize_mobile.py``), exported to ``folder/net.onnx`` at opset 17.

    Returns ``path``, ``calib_x`` (256 training inputs), ``eval_x``/``eval_labels`` (the 360 test inputs) and
    ``fp32_top1`` (torch, on the test inputs)."""
    import numpy as np
    import torch
    from torch import nn

    from edgecnn.tasks.digits import load_split, to_array

    def cbn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: type | None = nn.Hardswish
            ) -> nn.Sequential:
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([act()] if act else []))

    class SE(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.avgpool, self.fc1, self.fc2 = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)
            self.relu, self.gate = nn.ReLU(), nn.Hardsigmoid()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.gate(self.fc2(self.relu(self.fc1(self.avgpool(x)))))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, expanded: int, cout: int, stride: int) -> None:
            super().__init__()
            self.block = nn.Sequential(cbn(cin, expanded, act=nn.ReLU), cbn(expanded, expanded, 3, stride, expanded),
                                       SE(expanded), cbn(expanded, cout, act=None))
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.block(x)
            return x + y if self.residual else y

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(cbn(1, 8, 3, 2), InvertedResidual(8, 24, 12, 2),
                                          InvertedResidual(12, 36, 16, 2), InvertedResidual(16, 48, 16, 1))
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    split = load_split()
    xtr, ytr = to_array(split.train_images), split.train_labels
    xte, yte = to_array(split.test_images), split.test_labels
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    test_x = torch.from_numpy(xte)
    with torch.no_grad():
        before = model(test_x)
        rng = np.random.default_rng(seed)
        for block in model.modules():
            if isinstance(block, InvertedResidual):
                expand_bn, dw = block.block[0][1], block.block[1][0]
                s = torch.ones(dw.out_channels)
                s[rng.choice(dw.out_channels, dw.out_channels // 8, replace=False)] = spread
                expand_bn.weight /= s  # ReLU(a/s) = ReLU(a)/s: the expansion channel shrinks ...
                expand_bn.bias /= s
                dw.weight *= s.view(-1, 1, 1, 1)  # ... and its depthwise filter grows by the same factor
        after = model(test_x)
    assert float((after - before).abs().max()) < 1e-4, "the channel spread changed the function"
    path = folder / "net.onnx"
    torch.onnx.export(model, torch.zeros(1, 1, 32, 32), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return {"path": path, "calib_x": xtr[:256], "eval_x": xte, "eval_labels": yte,
            "fp32_top1": float((after.argmax(1).numpy() == yte).mean())}
