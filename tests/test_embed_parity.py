"""One exported model, the same answer everywhere: Python Engine, the C++ example, Node.js, a browser page, ORT format.

Every runtime gets the same preprocessed float32 NCHW tensor (a raw file) for the logits check: same top-5, and
max |logits - python| / max |python logits| <= 1e-4. Separately, the C++, Node and browser preprocessing of PPM/PGM
images is compared with Python's (it is meant to be bit-exact). Measured numbers go to artifacts/embed_parity.json;
a failing browser test keeps its screenshot under artifacts/.

These tests need toolchains (a built examples/cpp, npm packages, Chromium): ``tools/setup_parity.sh`` installs
them. Without them the tests skip with the reason, unless EDGECNN_REQUIRE_PARITY=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.parity

ROOT = Path(__file__).resolve().parents[1]
CPP_BIN = ROOT / "examples" / "cpp" / "build" / "edgecnn_classify"
NODE_DIR = ROOT / "examples" / "node"
WEB_DIR = ROOT / "examples" / "web"
ARTIFACTS = ROOT / "artifacts"
MAX_REL = 1e-4
#: the models every runtime runs: a plain CNN at 64x64, a grayscale one, and a mobile net with HardSwish,
#: HardSigmoid, depthwise convolutions and squeeze-and-excitation (ONNX Runtime 1.30-1.32 has no HardSwish kernel:
#: it expands the ONNX function into HardSigmoid + Mul when it loads the file, in every build used here)
MODELS = ["resnet18", "lenet5", "mobilenet_v3_small"]
MEASURED: dict[str, dict] = {}  # runtime -> measured differences, written at the end of the module


def need(ok: bool, reason: str) -> None:
    """Skip (or fail, when EDGECNN_REQUIRE_PARITY=1) unless a toolchain is there."""
    if ok:
        return
    message = f"{reason}; run tools/setup_parity.sh"
    if os.environ.get("EDGECNN_REQUIRE_PARITY") == "1":
        pytest.fail(message)
    pytest.skip(message)


def rel_diff(a: np.ndarray, ref: np.ndarray) -> float:
    """Max absolute difference over the max absolute reference logit."""
    return float(np.abs(a.astype(np.float64) - ref).max() / np.abs(ref).max())


def top5(logits: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-logits, kind="stable")[:5]]


def synthetic_image(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic RGB image with structure (gradients) and noise, HxWx3 uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 2.6) % 256, (y * 3.5) % 256, ((x + y) * 1.7) % 256], -1)
    return np.clip(img + rng.integers(0, 60, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Export resnet18 at 64x64, lenet5 (grayscale) and mobilenet_v3_small (224x224); images; Python's tensors and
    logits as the reference."""
    pytest.importorskip("torch")
    from PIL import Image

    from edgecnn.exporters import export
    from edgecnn.runtime import Engine, load_images

    d = tmp_path_factory.mktemp("embed")
    models = {
        "resnet18": export("resnet18", d / "resnet18.onnx", input_size=(64, 64), batch=1, force=True,
                           progress=False).path,
        "lenet5": export("lenet5", d / "lenet5.onnx", batch=1, force=True, progress=False).path,
        "mobilenet_v3_small": export("mobilenet_v3_small", d / "mobilenet_v3_small.onnx", batch=1, force=True,
                                     progress=False).path,
    }
    images = {  # landscape downscale, portrait upscale, grayscale PGM, and a tall picture whose height shrinks
        # more than twice as much as its width (Pillow 13 then resizes vertically first)
        "land.ppm": Image.fromarray(synthetic_image(97, 71, 0)),
        "port.ppm": Image.fromarray(synthetic_image(41, 53, 1)),
        "gray.pgm": Image.fromarray(synthetic_image(45, 39, 2)).convert("L"),
        "tall.ppm": Image.fromarray(synthetic_image(60, 200, 3)),
    }
    for name, img in images.items():
        img.save(d / name)
    ref: dict = {}
    for model, path in models.items():
        engine = Engine(path, provider="cpu")
        for name in images:
            x = load_images([d / name], engine.preprocess_config())
            x.tofile(d / f"{model}-{name}.raw")
            ref[(model, name)] = {"input": x[0], "logits": engine.run(x)[0].astype(np.float64)}
    return {"dir": d, "models": {k: Path(v) for k, v in models.items()}, "images": list(images), "ref": ref}


def run_cli(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def record(runtime: str, **values: float) -> None:
    MEASURED.setdefault(runtime, {}).update(values)


@pytest.fixture(scope="module", autouse=True)
def write_measurements():
    yield
    if MEASURED:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "embed_parity.json").write_text(json.dumps(MEASURED, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------------------- runners

def cpp_cmd(model: Path, inp: Path, *extra: str) -> list[str]:
    return [str(CPP_BIN), str(model), str(inp), "--json", *extra]


def node_cmd(model: Path, inp: Path, *extra: str) -> list[str]:
    return ["node", str(NODE_DIR / "classify.mjs"), str(model), str(inp), "--json", *extra]


RUNNERS = {"cpp": cpp_cmd, "node": node_cmd}


def check_toolchain(runtime: str) -> None:
    if runtime == "cpp":
        need(CPP_BIN.is_file(), f"C++ example not built ({CPP_BIN.relative_to(ROOT)} missing)")
    else:
        need(shutil.which("node") is not None, "node not found")
        need((NODE_DIR / "node_modules" / "onnxruntime-node").is_dir(), "onnxruntime-node not installed")


# ---------------------------------------------------------------------------------------- C++ and Node

@pytest.mark.parametrize("runtime", ["cpp", "node"])
@pytest.mark.parametrize("model", MODELS)
def test_logits_match_python_on_the_same_tensor(work: dict, runtime: str, model: str) -> None:
    check_toolchain(runtime)
    worst = 0.0
    for name in work["images"]:
        raw = work["dir"] / f"{model}-{name}.raw"
        p = run_cli(RUNNERS[runtime](work["models"][model], raw))
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        logits = np.asarray(out["logits"], dtype=np.float32)
        ref = work["ref"][(model, name)]["logits"]
        assert logits.shape == ref.shape
        assert [t["index"] for t in out["top"]] == top5(ref), f"{runtime} top-5 differs from Python on {name}"
        diff = rel_diff(logits, ref)
        assert diff <= MAX_REL, f"{runtime} logits differ from Python by {diff:.2e} (relative) on {name}"
        worst = max(worst, diff)
    record(runtime, **{f"logits_rel_diff_{model}": worst})


@pytest.mark.parametrize("runtime", ["cpp", "node"])
@pytest.mark.parametrize("model", MODELS)
def test_image_preprocessing_matches_python(work: dict, runtime: str, model: str) -> None:
    check_toolchain(runtime)
    worst = 0.0
    for name in work["images"]:
        dumped = work["dir"] / f"{runtime}-{model}-{name}.dump"
        p = run_cli(RUNNERS[runtime](work["models"][model], work["dir"] / name, "--dump-input", str(dumped)))
        assert p.returncode == 0, p.stderr
        ref = work["ref"][(model, name)]
        x = np.fromfile(dumped, dtype=np.float32).reshape(ref["input"].shape)
        diff = float(np.abs(x - ref["input"]).max())
        assert diff <= 1e-6, f"{runtime} preprocessing of {name} differs from Python by {diff}"
        assert top5(np.asarray(json.loads(p.stdout)["logits"])) == top5(ref["logits"])
        worst = max(worst, diff)
    record(runtime, **{f"preprocess_max_abs_diff_{model}": worst})


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_errors_are_one_line(work: dict, runtime: str) -> None:
    check_toolchain(runtime)
    model = work["models"]["lenet5"]
    cases = [
        (RUNNERS[runtime](work["dir"] / "missing.onnx", work["dir"] / "gray.pgm"), "not found"),
        (RUNNERS[runtime](model, work["dir"] / "missing.ppm"), "not found"),
        (RUNNERS[runtime](model, work["dir"] / "resnet18-land.ppm.raw"), "expected"),  # wrong size
        (RUNNERS[runtime](model, work["dir"] / "gray.pgm", "--provider", "tpu"), "--provider"),
    ]
    for cmd, needle in cases:
        p = run_cli(cmd)
        assert p.returncode != 0
        first = p.stderr.strip().splitlines()[0]
        assert first.startswith("error: ") and needle in first, p.stderr
        assert "Traceback" not in p.stderr and "    at " not in p.stderr


def test_cpp_cuda_provider_is_refused_clearly_without_cuda(work: dict) -> None:
    check_toolchain("cpp")
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    p = run_cli(cpp_cmd(work["models"]["lenet5"], work["dir"] / "gray.pgm", "--provider", "cuda"))
    assert p.returncode == 1 and p.stderr.startswith("error: provider cuda is not available"), p.stderr


# ---------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def web_server(work: dict):
    need((WEB_DIR / "node_modules" / "onnxruntime-web").is_dir(), "onnxruntime-web not installed")
    need((WEB_DIR / "node_modules" / "playwright-core").is_dir(), "playwright-core not installed")
    need(shutil.which("chromium") is not None, "chromium not found (apt-get install chromium)")
    proc = subprocess.Popen([sys.executable, str(WEB_DIR / "serve.py"), "--port", "0", "--files", str(work["dir"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, f"server did not start: {line}{proc.stderr.read() if proc.poll() is not None else ''}"
        yield f"http://127.0.0.1:{m.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_pages(urls: list[str], shot: Path) -> list[dict]:
    """Open each page in one headless Chromium; keep the screenshot under artifacts/ only when something fails."""
    p = run_cli(["node", str(WEB_DIR / "run_page.mjs"), *urls, "--screenshot", str(shot)], cwd=WEB_DIR, timeout=300)
    if p.returncode != 0:
        ARTIFACTS.mkdir(exist_ok=True)
        if shot.is_file():
            shutil.copy(shot, ARTIFACTS / shot.name)
        pytest.fail(f"page failed ({p.stderr.strip() or p.stdout[-300:]}); screenshot: artifacts/{shot.name}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("model", MODELS)
def test_browser_page_matches_python(work: dict, web_server: str, model: str) -> None:
    shot = work["dir"] / f"web-{model}.png"
    cases = [(name, f"{model}-{name}.raw" if raw else name) for name in work["images"] for raw in (True, False)]
    urls = [f"{web_server}/?model=/files/{model}.onnx&image=/files/{image}&runs=5" for _, image in cases]
    worst = worst_prep = 0.0
    latencies = []
    try:
        for (name, image), out in zip(cases, run_pages(urls, shot), strict=True):
            result, ref = out["result"], work["ref"][(model, name)]
            assert result["cross_origin_isolated"] is True and result["threads"] >= 1
            assert [t["index"] for t in result["top"]] == top5(ref["logits"]), f"browser top-5 differs on {image}"
            assert not out["console_errors"], out["console_errors"]
            if image.endswith(".raw"):  # the shared tensor: logits
                diff = rel_diff(np.asarray(result["logits"], dtype=np.float32), ref["logits"])
                assert diff <= MAX_REL, f"browser logits differ from Python by {diff:.2e} on {image}"
                worst = max(worst, diff)
            else:  # the image file: the page's preprocessing
                x = np.asarray(result["input"], dtype=np.float32).reshape(ref["input"].shape)
                prep = float(np.abs(x - ref["input"]).max())
                assert prep <= 1e-6, f"browser preprocessing of {name} differs from Python by {prep}"
                worst_prep = max(worst_prep, prep)
            latencies.append(result["latency_ms"])
    except AssertionError:
        ARTIFACTS.mkdir(exist_ok=True)
        if shot.is_file():
            shutil.copy(shot, ARTIFACTS / shot.name)
        raise
    record("web", **{f"logits_rel_diff_{model}": worst, f"preprocess_max_abs_diff_{model}": worst_prep,
                     f"median_latency_ms_{model}": float(np.median(latencies)), "threads": result["threads"]})


def test_browser_sample_image_and_page_render(work: dict, web_server: str) -> None:
    """The bundled sample (generated by serve.py) classifies, and the page shows five rows and a latency."""
    import urllib.request

    from PIL import Image

    from edgecnn.runtime import Engine, load_images

    shot = ARTIFACTS / "web-sample.png"
    ARTIFACTS.mkdir(exist_ok=True)
    (out,) = run_pages([f"{web_server}/?model=/files/resnet18.onnx&image=/sample.ppm&runs=5"], shot)
    with urllib.request.urlopen(f"{web_server}/sample.ppm", timeout=10) as r:
        (work["dir"] / "sample.ppm").write_bytes(r.read())
    engine = Engine(work["models"]["resnet18"], provider="cpu")
    ref = engine.run(load_images([Image.open(work["dir"] / "sample.ppm")], engine.preprocess_config()))[0]
    assert [t["index"] for t in out["result"]["top"]] == top5(ref)
    assert out["result"]["top"][0]["label"] != str(out["result"]["top"][0]["index"])  # ImageNet names shown
    assert out["result"]["latency_ms"] > 0
    shot.unlink(missing_ok=True)  # kept only when the page fails


# ---------------------------------------------------------------------------------------- ORT format


@pytest.mark.parametrize("model, size", [("resnet18", "[64, 64]"), ("mobilenet_v3_small", "[224, 224]")])
def test_ort_format_matches_python(work: dict, model: str, size: str) -> None:
    import onnxruntime as ort

    from edgecnn.exporters.ort_format import to_ort_format

    t0 = time.perf_counter()
    paths = to_ort_format(work["models"][model], work["dir"] / "ort")
    seconds = time.perf_counter() - t0
    sess = ort.InferenceSession(str(paths["ort"]), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map["edgecnn.input_size"] == size
    worst = 0.0
    for name in work["images"]:
        ref = work["ref"][(model, name)]
        logits = sess.run(None, {sess.get_inputs()[0].name: ref["input"][None]})[0][0]
        assert top5(logits) == top5(ref["logits"])
        worst = max(worst, rel_diff(logits, ref["logits"]))
    assert worst <= MAX_REL
    record("ort_format", **{f"logits_rel_diff_{model}": worst, f"convert_seconds_{model}": round(seconds, 2)})


# ---------------------------------------------------------------------------------------- the whole contract
#
# Files whose metadata changes the input: a file saved with --bgr (channel order), a foreign NHWC file without
# metadata (layout guessed from the shape, a softmax output), a file saved with --crop none, and an fp16-IO
# export (float16 tensors in and out). Each runtime preprocesses the images itself and must give Python's tensor
# and Python's top-5.

KINDS = ["bgr", "nhwc", "nocrop", "fp16io"]
#: relative logits tolerance per kind (float16 outputs carry 3 significant digits)
KIND_MAX_REL = {"bgr": MAX_REL, "nhwc": MAX_REL, "nocrop": MAX_REL, "fp16io": 2e-3}


@pytest.fixture(scope="module")
def contract(work: dict) -> dict:
    """The four files, and Python's tensors and top-5 for every image (the reference)."""
    import onnx
    from foreign_models import keras_nhwc_model

    from edgecnn.cli import main
    from edgecnn.exporters import export
    from edgecnn.runtime import Engine, load_images
    from edgecnn.runtime.postprocess import class_scores

    d = work["dir"]

    def cli(*args: str) -> None:
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            assert not e.code, f"edgecnn {' '.join(map(str, args))} failed"

    cli("inspect", work["models"]["resnet18"], "--save-metadata", "--bgr", "-o", d / "bgr.onnx")
    onnx.save(keras_nhwc_model(classes=1000, size=48, batch=1, seed=4), str(d / "nhwc.onnx"))
    cli("inspect", work["models"]["lenet5"], "--save-metadata", "--crop", "none", "-o", d / "nocrop.onnx")
    export("resnet18", d / "fp16io.onnx", input_size=(64, 64), batch=1, precision="fp16", io_dtype="float16",
           force=True, progress=False)
    ref: dict = {}
    for kind in KINDS:
        engine = Engine(d / f"{kind}.onnx", provider="cpu")
        cfg = engine.preprocess_config()
        for name in work["images"]:
            x = load_images([d / name], cfg)
            x.tofile(d / f"{kind}-{name}.raw")
            logits = engine.run(x)
            ref[(kind, name)] = {"input": x[0], "logits": logits[0].astype(np.float64),
                                 "top5": top5(class_scores(logits, engine.metadata)[0].astype(np.float64))}
    return {"ref": ref, "models": {k: d / f"{k}.onnx" for k in KINDS}}


def test_the_contract_files_differ_where_they_should(contract: dict, work: dict) -> None:
    """The fixture is what the parity cases claim: BGR, NHWC, no crop and float16 change Python's tensor."""
    from edgecnn.onnxfile import read_metadata

    ref = contract["ref"]
    land = "land.ppm"
    assert read_metadata(contract["models"]["bgr"])["channel_order"] == "bgr"
    rgb = work["ref"][("resnet18", land)]["input"]
    assert not np.array_equal(ref[("bgr", land)]["input"], rgb)
    assert read_metadata(contract["models"]["nhwc"]) == {} and ref[("nhwc", land)]["input"].shape == (48, 48, 3)
    assert read_metadata(contract["models"]["nocrop"])["crop_fraction"] is None
    assert not np.array_equal(ref[("nocrop", land)]["input"], work["ref"][("lenet5", land)]["input"])
    assert ref[("fp16io", land)]["input"].dtype == np.float16


def _dump_dtype(kind: str) -> type:
    return np.float16 if kind == "fp16io" else np.float32


@pytest.mark.parametrize("runtime", ["cpp", "node"])
@pytest.mark.parametrize("kind", KINDS)
def test_contract_file_preprocessing_and_top5_match_python(contract: dict, work: dict, runtime: str,
                                                           kind: str) -> None:
    check_toolchain(runtime)
    worst_prep = worst = 0.0
    for name in work["images"]:
        ref = contract["ref"][(kind, name)]
        dumped = work["dir"] / f"{runtime}-{kind}-{name}.dump"
        p = run_cli(RUNNERS[runtime](contract["models"][kind], work["dir"] / name, "--dump-input", str(dumped)))
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        x = np.fromfile(dumped, dtype=_dump_dtype(kind)).reshape(ref["input"].shape)
        prep = float(np.abs(x.astype(np.float64) - ref["input"].astype(np.float64)).max())
        assert prep <= 1e-6, f"{runtime} preprocessing of {name} for the {kind} file differs by {prep}"
        if x.dtype == np.float16:  # rounded as numpy rounds: the same bits
            assert np.array_equal(x.view(np.uint16), ref["input"].view(np.uint16)), f"{runtime} float16 rounding"
        assert [t["index"] for t in out["top"]] == ref["top5"], f"{runtime} top-5 differs on {kind}/{name}"
        diff = rel_diff(np.asarray(out["logits"], dtype=np.float32), ref["logits"])
        assert diff <= KIND_MAX_REL[kind], f"{runtime} logits differ by {diff:.2e} on {kind}/{name}"
        # the same tensor, given raw: only the runtime differs
        p = run_cli(RUNNERS[runtime](contract["models"][kind], work["dir"] / f"{kind}-{name}.raw"))
        assert p.returncode == 0, p.stderr
        assert [t["index"] for t in json.loads(p.stdout)["top"]] == ref["top5"]
        worst_prep, worst = max(worst_prep, prep), max(worst, diff)
    record(runtime, **{f"preprocess_max_abs_diff_{kind}": worst_prep, f"logits_rel_diff_{kind}": worst})


@pytest.mark.parametrize("kind", KINDS)
def test_contract_file_in_the_browser_matches_python(contract: dict, work: dict, web_server: str, kind: str) -> None:
    shot = work["dir"] / f"web-{kind}.png"
    cases = [(name, f"{kind}-{name}.raw" if raw else name) for name in work["images"] for raw in (True, False)]
    urls = [f"{web_server}/?model=/files/{kind}.onnx&image=/files/{image}&runs=1" for _, image in cases]
    worst = worst_prep = 0.0
    for (name, image), out in zip(cases, run_pages(urls, shot), strict=True):
        result, ref = out["result"], contract["ref"][(kind, name)]
        assert [t["index"] for t in result["top"]] == ref["top5"], f"browser top-5 differs on {kind}/{image}"
        assert result["input_dtype"] == str(ref["input"].dtype) and not out["console_errors"]
        diff = rel_diff(np.asarray(result["logits"], dtype=np.float32), ref["logits"])
        assert diff <= KIND_MAX_REL[kind], f"browser logits differ by {diff:.2e} on {kind}/{image}"
        worst = max(worst, diff)
        if not image.endswith(".raw"):
            x = np.asarray(result["input"], dtype=np.float64).reshape(ref["input"].shape)
            prep = float(np.abs(x - ref["input"].astype(np.float64)).max())
            assert prep <= 1e-6, f"browser preprocessing of {name} for the {kind} file differs by {prep}"
            worst_prep = max(worst_prep, prep)
    record("web", **{f"logits_rel_diff_{kind}": worst, f"preprocess_max_abs_diff_{kind}": worst_prep})


def test_js_resize_is_pillows_in_both_pass_orders(tmp_path: Path) -> None:
    """examples/js's bilinear resize equals Pillow's bit for bit on random sizes, enlarging and shrinking, in both of
    Pillow's pass orders (vertical first when the height shrinks more than twice as much as the width)."""
    need(shutil.which("node") is not None, "node not found")
    from PIL import Image

    rng = np.random.default_rng(7)
    cases = []
    for i in range(60):
        w0, h0, w1, h1 = (int(v) for v in rng.integers(3, 90, 4))
        channels = 3 if i % 2 else 1
        pixels = rng.integers(0, 256, (h0, w0, channels), dtype=np.uint8)
        pixels.tofile(tmp_path / f"{i}.in")
        img = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
        np.asarray(img.resize((w1, h1), Image.Resampling.BILINEAR)).tofile(tmp_path / f"{i}.want")
        cases.append([i, w0, h0, channels, w1, h1])
    vertical_first = sum(1 for _, w0, h0, _, w1, h1 in cases if h0 - h1 > 0 and h0 - h1 > 2 * (w0 - w1))
    assert 5 <= vertical_first <= 55, "the cases cover both pass orders"
    script = (f"import {{ resizeBilinear }} from {json.dumps((ROOT / 'examples/js/edgecnn.mjs').as_uri())};"
              "import { readFileSync, writeFileSync } from 'node:fs';"
              "const [dir, cases] = [process.argv[1], JSON.parse(process.argv[2])];"
              "for (const [i, width, height, channels, w1, h1] of cases) {"
              "  const pixels = new Uint8Array(readFileSync(`${dir}/${i}.in`));"
              "  writeFileSync(`${dir}/${i}.got`, resizeBilinear({ width, height, channels, pixels }, w1, h1).pixels);"
              "}")
    p = run_cli(["node", "--input-type=module", "-e", script, str(tmp_path), json.dumps(cases)])
    assert p.returncode == 0, p.stderr
    wrong = [c for c in cases if (tmp_path / f"{c[0]}.got").read_bytes() != (tmp_path / f"{c[0]}.want").read_bytes()]
    assert not wrong, f"{len(wrong)} of {len(cases)} resizes differ from Pillow's, e.g. {wrong[:3]}"


def test_js_float16_rounding_is_numpys(tmp_path: Path) -> None:
    """examples/js rounds float32 to float16 as numpy's astype does (ties to even, subnormals, overflow), and reads
    float16 back exactly."""
    need(shutil.which("node") is not None, "node not found")
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(20000) * scale for scale in (1e-7, 1e-5, 1e-3, 1.0, 300.0, 7e4)]
    edges = [0.0, -0.0, 65504.0, 65519.0, 65520.0, 2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -24, 2.0 ** -14,
             1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, np.inf, -np.inf]
    values = np.concatenate([*parts, edges]).astype(np.float32)
    values.tofile(tmp_path / "in.f32")
    script = (f"import {{ toHalfBits, fromHalfBits }} from {json.dumps((ROOT / 'examples/js/edgecnn.mjs').as_uri())};"
              "import { readFileSync, writeFileSync } from 'node:fs';"
              "const b = readFileSync(process.argv[1]);"
              "const v = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));"
              "const h = Uint16Array.from(v, toHalfBits);"
              "const back = Float32Array.from(h, fromHalfBits);"
              "writeFileSync(process.argv[2], Buffer.from(h.buffer));"
              "writeFileSync(process.argv[3], Buffer.from(back.buffer));")
    p = run_cli(["node", "--input-type=module", "-e", script, str(tmp_path / "in.f32"), str(tmp_path / "h.u16"),
                 str(tmp_path / "back.f32")])
    assert p.returncode == 0, p.stderr
    bits = np.fromfile(tmp_path / "h.u16", dtype=np.uint16)
    with np.errstate(over="ignore"):  # 65520 and up round to infinity, as intended
        want = values.astype(np.float16)
    wrong = np.flatnonzero(bits != want.view(np.uint16))
    assert not wrong.size, f"{wrong.size} values round differently from numpy, e.g. {values[wrong[:3]]}"
    np.testing.assert_array_equal(np.fromfile(tmp_path / "back.f32", dtype=np.float32), want.astype(np.float32))


@pytest.mark.parametrize("runtime", ["cpp", "node"])
def test_keys_an_example_cannot_honour_stop_it_at_load(work: dict, runtime: str) -> None:
    """An unknown task, a letterbox or an io_dtype that contradicts the graph: one error line, no output."""
    check_toolchain(runtime)
    import onnx

    from edgecnn import onnxfile

    cases = {"task": ({"task": "pose"}, "unknown edgecnn.task 'pose'"),
             "letterbox": ({"letterbox": "true"}, "letterbox"),
             "io": ({"io_dtype": "float16"}, "io_dtype says float16")}
    for key, (extra, needle) in cases.items():
        model = onnx.load(str(work["models"]["lenet5"]))
        props = {p.key: p.value for p in model.metadata_props}
        props.update({f"edgecnn.{k}": v for k, v in extra.items()})  # raw strings, as a newer edgecnn writes them
        del model.metadata_props[:]
        for k, v in props.items():
            model.metadata_props.add(key=k, value=v)
        path = work["dir"] / f"refuse-{key}.onnx"
        onnx.save(model, str(path))
        assert onnxfile.read_metadata(path)  # still an edgecnn file
        p = run_cli(RUNNERS[runtime](path, work["dir"] / "gray.pgm"))
        assert p.returncode == 1 and p.stdout == "", p.stdout
        first = p.stderr.strip().splitlines()
        assert len(first) == 1 and first[0].startswith("error: ") and needle in first[0], p.stderr
