"""Engine: batch splitting, dtypes, input checks, bad files, info, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx_factory import make_classifier

from edgecnn.errors import EdgecnnError
from edgecnn.runtime import Engine


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "dynamic": make_classifier(d / "dynamic.onnx"),
        "fixed1": make_classifier(d / "fixed1.onnx", batch=1),
        "fixed8": make_classifier(d / "fixed8.onnx", batch=8),
        "fp16": make_classifier(d / "fp16.onnx", dtype="float16"),
    }


def _x(n, dtype=np.float32, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(dtype)


def _one_by_one(engine, x):
    return np.concatenate([engine.run(x[i:i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("kind", ["dynamic", "fixed1", "fixed8"])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_batch_splitting_matches_unbatched(models, kind, n):
    engine = Engine(models[kind], "cpu", max_batch=16)
    x = _x(n)
    out = engine.run(x)
    assert out.shape == (n, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, _one_by_one(engine, x), rtol=1e-5, atol=1e-6)


def test_fixed_and_dynamic_files_agree(models):
    x = _x(13)
    dyn = Engine(models["dynamic"], "cpu", max_batch=4).run(x)
    fixed = Engine(models["fixed8"], "cpu").run(x)
    np.testing.assert_allclose(dyn, fixed, rtol=1e-5, atol=1e-6)


def test_chunk_sizes(models):
    assert Engine(models["fixed8"], "cpu", max_batch=3).chunk_size == 8
    assert Engine(models["dynamic"], "cpu", max_batch=3).chunk_size == 3


def test_fp16_model(models):
    engine = Engine(models["fp16"], "cpu")
    assert engine.input_dtype == np.float16
    x = _x(5, np.float16)
    out = engine.run(x)
    assert out.dtype == np.float16 and out.shape == (5, 10)
    ref = Engine(models["dynamic"], "cpu").run(x.astype(np.float32))
    np.testing.assert_allclose(out.astype(np.float32), ref, rtol=0.05, atol=0.05)
    assert engine.preprocess_config().dtype == "float16"


def test_io_binding_path_matches_plain_run(models):
    x = _x(9)
    plain = Engine(models["fixed8"], "cpu").run(x)
    bound = Engine(models["fixed8"], "cpu", io_binding=True)
    assert bound.io_binding
    np.testing.assert_array_equal(bound.run(x), plain)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((3, 32, 32), np.float32), r"expected \[N, 3, 32, 32\].*received \[3, 32, 32\]"),
        (np.zeros((2, 1, 32, 32), np.float32),
         r"wrong input shape: expected \[N, 3, 32, 32\].*received \[2, 1, 32, 32\]"),
        (np.zeros((2, 3, 28, 28), np.float32), r"received \[2, 3, 28, 28\]"),
        (np.zeros((0, 3, 32, 32), np.float32), r"received \[0, 3, 32, 32\]"),
        (np.zeros((2, 3, 32, 32), np.float64), r"wrong input dtype: expected float32.*received float64"),
        ([[1.0]], r"numpy array"),
    ],
)
def test_wrong_input(models, x, match):
    engine = Engine(models["dynamic"], "cpu")
    with pytest.raises(EdgecnnError, match=match):
        engine.run(x)


def test_wrong_dtype_fp16_model(models):
    with pytest.raises(EdgecnnError, match=r"expected float16.*received float32 \[2, 3, 32, 32\]"):
        Engine(models["fp16"], "cpu").run(_x(2))


def test_missing_and_bad_files(tmp_path, models):
    with pytest.raises(EdgecnnError, match="model file not found"):
        Engine(tmp_path / "nope.onnx")
    with pytest.raises(EdgecnnError, match="not a file"):
        Engine(tmp_path)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(EdgecnnError, match="cannot load .*corrupt.onnx") as ei:
        Engine(corrupt)
    assert "\n" not in str(ei.value)
    data = models["dynamic"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgecnnError, match="cannot load .*truncated.onnx") as ei:
        Engine(truncated)
    assert "\n" not in str(ei.value)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(EdgecnnError, match="cannot load"):
        Engine(empty)


def test_options_validated(models):
    with pytest.raises(EdgecnnError, match="graph optimization"):
        Engine(models["dynamic"], graph_optimization="max")
    with pytest.raises(EdgecnnError, match="max_batch"):
        Engine(models["dynamic"], max_batch=0)


def test_info_and_options(models, tmp_path):
    opt = tmp_path / "opt.onnx"
    engine = Engine(models["dynamic"], "cpu", threads=1, graph_optimization="basic",
                    optimized_model_path=opt, spinning=False)
    info = engine.info
    assert opt.is_file()
    assert info.inputs[0].name == "input" and info.inputs[0].shape == ("batch", 3, 32, 32)
    assert info.inputs[0].dtype == "float32"
    assert info.outputs[0].name == "logits"
    assert info.providers == ("CPUExecutionProvider",)
    assert info.batch_size is None and info.metadata["model"] == "tiny"
    assert info.metadata["input_size"] == [32, 32] and info.metadata["num_classes"] == 10
    d = info.as_dict()
    assert d["inputs"][0]["shape"] == ("batch", 3, 32, 32)
    assert Engine(models["fixed8"], "cpu").info.batch_size == 8
    assert "CPUExecutionProvider" in repr(engine)


def test_thread_safe(models):
    engine = Engine(models["fixed8"], "cpu", threads=1)
    inputs = [_x(int(n), seed=i) for i, n in enumerate(np.random.default_rng(0).integers(1, 20, 24))]
    expected = [engine.run(x) for x in inputs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i):
        try:
            for _ in range(3):
                results[i] = engine.run(inputs[i])
                np.testing.assert_allclose(results[i], expected[i], rtol=1e-6, atol=1e-6)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == len(inputs)
