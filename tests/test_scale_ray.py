"""`edgecnn batch-predict --ray` on a local Ray cluster started in the test: same rows as the local path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from cli_helpers import run_cli as _run
from onnx_factory import make_classifier
from test_scale_batch_predict import make_images

from edgecnn.scale.local import read_results

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None,
                       reason="ray[data] and pyarrow are not installed (pip install 'edgecnn[ray]')"),
]

N_IMAGES = 300


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray")
    return {"dir": d / "images", "rel": make_images(d / "images", N_IMAGES, seed=1), "tmp": d,
            "model": make_classifier(d / "tiny.onnx", num_classes=10, size=32),
            "lenet": make_classifier(d / "gray.onnx", channels=1, size=28, num_classes=10,
                                     metadata={"mean": [0.1307], "std": [0.3081]})}




def _compare(local, remote):
    assert len(remote) == len({r["path"] for r in remote})  # each image exactly once
    by_path = {r["path"]: r for r in remote}
    assert sorted(by_path) == [r["path"] for r in local]
    for r in local:
        got = by_path[r["path"]]
        assert got["classes"] == r["classes"] and got["labels"] == r["labels"], r["path"]
        np.testing.assert_allclose(got["probabilities"], r["probabilities"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model", ["model", "lenet"])
def test_ray_equals_local(cluster, capsys, data, model):
    local, remote = data["tmp"] / f"{model}-local.parquet", data["tmp"] / f"{model}-ray.parquet"
    code, _, err = _run(capsys, "batch-predict", str(data[model]), str(data["dir"]), "-o", str(local),
                        "--no-progress", "--batch", "16")
    assert code == 0, err
    code, out, err = _run(capsys, "batch-predict", str(data[model]), str(data["dir"]), "-o", str(remote),
                          "--ray", "--concurrency", "2", "--batch", "16", "--no-progress")
    assert code == 0, err
    assert f"{N_IMAGES} images" in out and "ray, 2 workers" in out
    rows = read_results(remote)
    assert len(rows) == N_IMAGES
    _compare(read_results(local), rows)


def test_ray_bad_image_is_one_line(cluster, capsys, tmp_path, data):
    make_images(tmp_path / "im", 4)
    (tmp_path / "im" / "a" / "broken.png").write_bytes(b"\x89PNG nope")
    out = tmp_path / "r.parquet"
    code, _, err = _run(capsys, "batch-predict", str(data["model"]), str(tmp_path / "im"), "-o", str(out),
                        "--ray", "--concurrency", "1", "--no-progress")
    last = err.strip().splitlines()[-1]  # Ray logs the worker's traceback above; ours is one line
    assert code == 2 and last.startswith("error: the Ray job failed") and "broken.png" in last, err
    assert not out.exists()


def test_predictor_directly(cluster, data):
    """The callable class works with plain Ray Data calls, as the docs show."""
    import ray

    from edgecnn.scale.ray import RayPredictor, model_payload

    ds = ray.data.read_images(str(data["dir"]), mode="RGB", include_paths=True, num_cpus=0)
    preds = ds.map_batches(RayPredictor, fn_constructor_kwargs={"model": model_payload(data["model"]), "top": 1},
                           batch_size=64, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)
    rows = preds.take_all()
    assert len(rows) == N_IMAGES and {len(r["classes"]) for r in rows} == {1}
