"""One ONNX Runtime per install: every install line of docs/install.md, resolved by pip against PyPI.

``pip install --dry-run --ignore-installed --report`` of the local checkout in an empty virtual environment
must select exactly one ``onnxruntime*`` distribution (none for the bare install and ``[openvino]`` alone).
The ``[tensorrt]`` line is checked by its declared requirements instead: TensorRT's PyPI packages are stubs
that download from NVIDIA's own index while installing. Needs PyPI, so ``slow``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from edgecnn.runtime.backends.ort_providers import ORT_DISTRIBUTIONS

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "install.md"
RUNTIME_EXTRAS = {"cpu", "gpu", "tensorrt"}
LINE = re.compile(r'`pip install "edgecnn(\[[a-z0-9_,-]+\])?"`')


def doc_lines() -> list[str]:
    """The extras of every install line in docs/install.md ('' for the bare install), in order."""
    found = [m.group(1) or "" for m in LINE.finditer(DOC.read_text())]
    return list(dict.fromkeys(found))


def _extras(spec: str) -> set[str]:
    return set(spec.strip("[]").split(",")) - {""}


def _is_ort(name: str) -> bool:
    n = name.lower().replace("_", "-")
    return n in ORT_DISTRIBUTIONS or n.startswith("onnxruntime")


def test_docs_list_every_runtime_line_and_combination():
    lines = doc_lines()
    for need in ("", "[cpu]", "[gpu]", "[tensorrt]", "[openvino]", "[cpu,openvino]", "[gpu,openvino]",
                 "[cpu,openvino,export,plot,dev,ray,triton]"):
        assert need in lines, f"docs/install.md lacks pip install \"edgecnn{need}\""
    setup = (ROOT / "tools" / "setup.sh").read_text()
    assert "EXTRAS=cpu,openvino,export,plot,dev,ray,triton" in setup


def test_declared_requirements_one_runtime_per_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [r for r in extras["dependencies"] if _is_ort(re.split(r"[\[<>=~! ;]", r)[0])]

    def ort_reqs(name: str) -> list[str]:
        return [r for r in extras["optional-dependencies"][name] if _is_ort(re.split(r"[\[<>=~! ;]", r)[0])]

    for name in extras["optional-dependencies"]:
        reqs = ort_reqs(name)
        assert len(reqs) == (1 if name in RUNTIME_EXTRAS else 0), (name, reqs)
    assert ort_reqs("gpu")[0].startswith("onnxruntime-gpu[cuda,cudnn]")
    trt = extras["optional-dependencies"]["tensorrt"]
    assert ort_reqs("tensorrt")[0].startswith("onnxruntime-gpu[cuda,cudnn]")
    # the TensorRT major that onnxruntime-gpu 1.31's TensorRT provider loads: libnvinfer.so.10
    assert [r for r in trt if r.startswith("tensorrt-cu13")] == ["tensorrt-cu13>=10.13,<11"]


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("empty-venv")
    venv.EnvBuilder(with_pip=True).create(d)
    return d / "bin" / "python"


def resolve(python: Path, extras: str, report: Path) -> dict[str, str]:
    """name -> version pip would install for the checkout with ``extras`` (nothing is installed)."""
    proc = subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--disable-pip-version-check", "--report", str(report), f"{ROOT}{extras}"],
                          capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"pip could not resolve edgecnn{extras}: {proc.stderr[-2000:]}")
    data = json.loads(report.read_text())
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in data["install"]}


@pytest.mark.slow
@pytest.mark.parametrize("extras", [e for e in doc_lines() if "tensorrt" not in _extras(e)]
                         + ["[export,plot,dev,ray,triton]"])  # the non-runtime extras pull no runtime
def test_install_line_resolves_to_one_runtime(empty_venv, extras, tmp_path):
    chosen = resolve(empty_venv, extras, tmp_path / "report.json")
    assert "edgecnn" in chosen
    ort = sorted(f"{n} {v}" for n, v in chosen.items() if _is_ort(n))
    print(f"edgecnn{extras}: {', '.join(ort) or 'no onnxruntime'}; openvino {chosen.get('openvino', '-')}")
    wants_runtime = bool(_extras(extras) & RUNTIME_EXTRAS)
    assert len(ort) == (1 if wants_runtime else 0), ort
    if "gpu" in _extras(extras):
        assert ort[0].startswith("onnxruntime-gpu ")
        assert any(n.startswith("nvidia-cudnn") for n in chosen), "onnxruntime-gpu[cuda,cudnn] brings cuDNN"
    elif "cpu" in _extras(extras):
        assert ort[0].startswith("onnxruntime ")
    assert ("openvino" in chosen) == ("openvino" in _extras(extras))


if __name__ == "__main__":  # print the resolution of every line (for docs and reports)
    sys.exit(pytest.main([__file__, "-m", "slow", "-s", "-q"]))
