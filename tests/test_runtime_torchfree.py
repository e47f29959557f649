"""The edge install: the runtime imports and runs a model in a process where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from onnx_factory import make_classifier
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    attempts = []

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                attempts.append(name)
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTorch())

    import numpy as np
    import edgecnn
    import edgecnn.runtime
    from edgecnn.runtime import (Batcher, Engine, imagenet_classes, load_images, predict, resolve_providers,
                                 topk)
    import edgecnn.runtime.doctor
    assert "torch" not in sys.modules, "importing edgecnn.runtime pulled in torch"

    model, image = sys.argv[1], sys.argv[2]
    engine = Engine(model, provider="auto")
    x = load_images([image, image], engine.preprocess_config())
    out = engine.run(x)
    assert out.shape == (2, 10), out.shape
    assert topk(out, 3)[0][0]["rank"] == 1
    assert len(predict(engine, [image], top=2)) == 1
    with Batcher(engine, max_wait_ms=1) as b:
        np.testing.assert_allclose(b.infer(x[0]), out[0], rtol=1e-5, atol=1e-6)
    assert edgecnn.Engine is Engine

    from edgecnn.cli import main
    try:
        main(["predict", model, image, "--json"])
    except SystemExit as e:
        assert not e.code, e.code
    assert "torch" not in sys.modules and not attempts, attempts
    report = edgecnn.runtime.doctor.collect()  # looks torch up (find_spec) without importing it
    assert report["torch"]["installed"] is False and "torch" not in sys.modules
    print("TORCH-FREE-OK")
    """
)


def test_runtime_runs_with_torch_blocked(tmp_path):
    model = make_classifier(tmp_path / "m.onnx")
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(image)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TORCH-FREE-OK" in proc.stdout


def test_import_with_torch_set_to_none(tmp_path):
    """``sys.modules['torch'] = None`` (how a user or a packager blocks torch): the runtime's public names
    resolve, and ``doctor`` reports torch as absent instead of importing it or crashing."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import edgecnn.runtime as r\n"
            "assert all(callable(f) for f in (r.Engine, r.Batcher, r.load_images, r.topk))\n"
            "import edgecnn.runtime.doctor as d\n"
            "t = d.collect()['torch']\n"
            "assert t == {'installed': False, 'version': None, 'cuda_build': False}, t\n"
            "assert sys.modules['torch'] is None, 'torch was imported'\n"
            "print('OK')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
