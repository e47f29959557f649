"""The bad-input matrix: hostile and careless inputs x the commands that read them, run as a user would.

Each :class:`Case` builds its files in a fresh folder, runs ``edgecnn ARGS`` in a subprocess (its own cache,
umask 022) and records an :class:`Outcome`: the exit code, the ``error:`` lines, whether a traceback was
printed, every file created or changed outside what the case allows, hidden temporary files left behind, and
the peak RSS of the process. ``tests/test_bad_input_matrix.py`` asserts on them; ``python tests/bad_inputs.py``
prints the matrix as a table (how the before/after table of the safety work was made).
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_factory import make_classifier_model  # noqa: E402

ESC = "\x1b"
HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\rname"


# --------------------------------------------------------------------------- builders


def write_model(path: Path, **kwargs: Any) -> Path:
    """The tiny 32x32, 10-class classifier with edgecnn metadata (``metadata=`` overrides)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(make_classifier_model(**kwargs), str(path))
    return path


def write_raw_meta(path: Path, raw: dict[str, str], **kwargs: Any) -> Path:
    """The tiny classifier with ``edgecnn.<key>`` metadata set to raw strings (malformed on purpose)."""
    model = make_classifier_model(**kwargs)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({f"edgecnn.{k}": v for k, v in raw.items()})
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_symlinked_data(root: Path) -> Path:
    """``root/m/model.onnx`` whose external data ``w.data`` is a symbolic link to ``root/outside/secret.data``."""
    model = make_classifier_model(with_metadata=False)
    (root / "m").mkdir(parents=True)
    (root / "outside").mkdir()
    path = root / "m" / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.data",
                    size_threshold=0)
    os.replace(root / "m" / "w.data", root / "outside" / "secret.data")
    os.symlink(os.path.join("..", "outside", "secret.data"), root / "m" / "w.data")
    return path


def write_subgraph_data(root: Path, location: str = "../secret.data") -> Path:
    """A classifier with an ``If`` node whose then-branch holds an initializer stored at ``location``."""
    model = make_classifier_model(with_metadata=False)
    (root / "m").mkdir(parents=True)
    (root / "secret.data").write_bytes(np.arange(10, dtype=np.float32).tobytes())
    ext = TensorProto(name="bias_ext", data_type=TensorProto.FLOAT, dims=[10], data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", "0"), ("length", "40")):
        ext.external_data.add(key=k, value=v)
    then_g = helper.make_graph([helper.make_node("Identity", ["bias_ext"], ["t_out"])], "then", [],
                               [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [10])], initializer=[ext])
    else_g = helper.make_graph([helper.make_node("Identity", ["bias_in"], ["e_out"])], "else", [],
                               [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [10])],
                               initializer=[numpy_helper.from_array(np.zeros(10, np.float32), "bias_in")])
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    g.node.append(helper.make_node("If", ["cond"], ["bias"], then_branch=then_g, else_branch=else_g, name="if"))
    g.node.append(helper.make_node("Add", ["logits_raw", "bias"], ["logits"], name="add_bias"))
    for n in g.node:
        if n.op_type == "Gemm":
            n.output[0] = "logits_raw"
    path = root / "m" / "model.onnx"
    onnx.save(model, str(path))
    return path


def write_unknown_dtype(path: Path) -> Path:
    """A classifier whose second output declares element type 99 (no such ONNX type)."""
    model = make_classifier_model()
    model.graph.output.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    model.graph.output[1].type.tensor_type.elem_type = 99
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_ort_rejects(path: Path) -> Path:
    """A valid ONNX file ONNX Runtime will not load: a node type mismatch the checker does not see (a Conv
    whose weights are float64 while the input is float)."""
    model = make_classifier_model()
    for t in model.graph.initializer:
        if t.name == "conv_w":
            arr = numpy_helper.to_array(t).astype(np.float64)
            t.CopyFrom(numpy_helper.from_array(arr, "conv_w"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_image(path: Path, size: tuple[int, int] = (40, 40), seed: int = 0) -> Path:
    """A small random RGB PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG of ``width`` x ``height`` zeros (a few hundred KB that decode to width*height bytes)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path


def write_truncated_image(path: Path) -> Path:
    """The first 60 bytes of a PNG."""
    tmp = write_image(path)
    tmp.write_bytes(tmp.read_bytes()[:60])
    return path


def image_folder(root: Path, n: int = 4, bad: Callable[[Path], Path] | None = None, classes: int = 2) -> Path:
    """``root/<class>/<i>.png`` (ImageFolder layout), with one bad image made by ``bad`` in class 0."""
    for c in range(classes):
        for i in range(n):
            write_image(root / str(c) / f"{i}.png", seed=10 * c + i)
    if bad is not None:
        bad(root / "0" / "zz_bad.png")
    return root


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """What a user saw and what the file system holds afterwards."""

    code: int
    stdout: str
    stderr: str
    errors: list[str]
    traceback: bool
    created: list[str]
    changed: list[str]
    hidden: list[str]
    peak_rss_mb: float


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p.relative_to(root))] = (st.st_size, int(st.st_mtime_ns), st.st_mode)
    return out


def run_edgecnn(args: list[str], cwd: Path, *, cache: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 300, memory_mb: int | None = None) -> subprocess.CompletedProcess:
    """``python -m edgecnn.cli ARGS`` in ``cwd`` with its own cache, umask 022 and, with ``memory_mb``, an
    address-space limit."""
    full_env = {**os.environ, "EDGECNN_CACHE_DIR": str(cache or cwd / ".cache-edgecnn"), "COLUMNS": "200",
                "PYTHONWARNINGS": "default", **(env or {})}
    full_env.pop("PYTEST_CURRENT_TEST", None)

    def limits() -> None:
        os.umask(0o022)
        if memory_mb:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))

    code = ("import resource, sys\nfrom edgecnn.cli import main\n"
            "try:\n    main(sys.argv[1:])\n    rc = 0\nexcept SystemExit as e:\n"
            "    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)\n"
            "sys.stdout.flush()\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
            "print('\\n@@peak_rss_kb', int(hwm[0].split()[1]) if hwm else\n"
            "      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limits)


@dataclass
class Case:
    """One row of the matrix: ``build(tmp)`` makes the files and returns the arguments; the command may write
    only under ``allowed`` (paths relative to ``tmp``, prefixes); ``expect`` is the exit code wanted."""

    id: str
    klass: str
    command: str
    build: Callable[[Path], list[str]]
    expect: int = 2
    allowed: tuple[str, ...] = ()
    #: the error line must contain each of these
    says: tuple[str, ...] = ()
    #: an extra check on (outcome, tmp): returns a problem or ""
    check: Callable[[Outcome, Path], str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int | None = None
    #: peak RSS bound of the process (MB), checked when set
    max_rss_mb: float | None = None
    timeout: float = 300


def run_case(case: Case, tmp: Path) -> Outcome:
    """Build, snapshot, run, snapshot again."""
    tmp.mkdir(parents=True, exist_ok=True)
    args = case.build(tmp)
    before = _snapshot(tmp)
    env = {k: v.replace("{tmp}", str(tmp)) for k, v in case.env.items()}
    cache = Path(env.pop("EDGECNN_CACHE_DIR")) if "EDGECNN_CACHE_DIR" in env else tmp / ".cache-edgecnn"
    try:
        proc = run_edgecnn(args, tmp, cache=cache, env=env, memory_mb=case.memory_mb, timeout=case.timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = -9, str(e.stdout or ""), str(e.stderr or "") + "\n(timed out)"
    after = _snapshot(tmp)
    peak = 0.0
    lines = []
    for line in err.splitlines():
        if line.startswith("@@peak_rss_kb"):
            peak = int(line.split()[1]) / 1024
        else:
            lines.append(line)
    err = "\n".join(lines)
    created = sorted(k for k in after if k not in before)
    changed = sorted(k for k in after if k in before and after[k] != before[k] and not Path(tmp / k).is_dir())
    allowed = (*case.allowed, ".cache-edgecnn")

    def ok(rel: str) -> bool:
        return any(rel == a or rel.startswith(a.rstrip("/") + "/") for a in allowed)

    hidden = sorted(k for k in after if Path(k).name.startswith(".") and not k.startswith(".cache-edgecnn")
                    and k not in before)
    return Outcome(code=code, stdout=out, stderr=err, errors=[x for x in err.splitlines() if x.startswith("error:")],
                   traceback="Traceback (most recent call last)" in err,
                   created=[c for c in created if not ok(c)], changed=[c for c in changed if not ok(c)],
                   hidden=hidden, peak_rss_mb=round(peak, 1))


def problems(case: Case, o: Outcome, tmp: Path) -> list[str]:
    """What is wrong with an outcome; empty when the command behaved."""
    found = []
    if o.code != case.expect:
        found.append(f"exit {o.code}, expected {case.expect}")
    if o.traceback:
        found.append("traceback printed")
    if case.expect != 0 and len(o.errors) != 1:
        found.append(f"{len(o.errors)} 'error:' lines")
    for s in case.says:
        if not any(s in e for e in o.errors):
            found.append(f"error line lacks {s!r}")
    if o.created or o.changed:
        found.append(f"wrote outside: {(o.created + o.changed)[:4]}")
    if o.hidden:
        found.append(f"left hidden files: {o.hidden[:3]}")
    if ESC in o.stdout or ESC in o.stderr or "\x07" in o.stdout:
        found.append("raw control characters printed")
    if case.max_rss_mb is not None and o.peak_rss_mb > case.max_rss_mb:
        found.append(f"peak RSS {o.peak_rss_mb:.0f} MB > {case.max_rss_mb:.0f} MB")
    if case.check is not None and (extra := case.check(o, tmp)):
        found.append(extra)
    return found


# --------------------------------------------------------------------------- the cases


def _m(tmp: Path, **kw: Any) -> str:
    return str(write_model(tmp / "model.onnx", **kw))


def _predict(**kw: Any) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        return ["predict", _m(tmp, **kw), str(write_image(tmp / "cat.png"))]
    return build


def _predict_raw(raw: dict[str, str], extra: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        return ["predict", str(write_raw_meta(tmp / "model.onnx", raw)), str(write_image(tmp / "cat.png")), *extra]
    return build


def _unchanged(rel: str) -> Callable[[Outcome, Path], str]:
    def check(o: Outcome, tmp: Path) -> str:
        data = (tmp / rel).read_bytes()
        return "" if data == (tmp / (rel + ".orig")).read_bytes() else f"{rel} was replaced"
    return check


def _keep_copy(path: Path) -> Path:
    (path.parent / (path.name + ".orig")).write_bytes(path.read_bytes())
    return path


def _small_output(limit: int) -> Callable[[Outcome, Path], str]:
    def check(o: Outcome, tmp: Path) -> str:
        n = max((len(x) for x in (o.stdout + o.stderr).splitlines()), default=0)
        return "" if n <= limit else f"a {n}-character line printed"
    return check


def _no_cache_copies(o: Outcome, tmp: Path) -> str:
    norm = tmp / ".cache-edgecnn" / "normalized"
    left = [p for p in norm.rglob("*") if p.is_file()] if norm.exists() else []
    return f"{len(left)} normalised copies left in the cache" if left else ""


def _mode(rel: str, mode: int) -> Callable[[Outcome, Path], str]:
    def check(o: Outcome, tmp: Path) -> str:
        got = (tmp / rel).stat().st_mode & 0o777
        return "" if got == mode else f"{rel} has mode {got:o}, expected {mode:o}"
    return check


def _skip_line(o: Outcome, tmp: Path) -> str:
    return "" if any("skipped 1" in x for x in o.stderr.splitlines()) else "no 'skipped 1 ...' line"


def _labels_meta(n: int) -> dict[str, Any]:
    return {"labels": [f"class{i}" for i in range(n)]}


def _cases() -> list[Case]:  # noqa: PLR0915 - a table
    cases: list[Case] = []
    add = cases.append

    # 1. paths: external data outside the model's folder
    def sym(cmd: list[str]) -> Callable[[Path], list[str]]:
        def build(tmp: Path) -> list[str]:
            p = write_symlinked_data(tmp)
            write_image(tmp / "cat.png")
            return [c.replace("{m}", str(p)) for c in cmd]
        return build

    add(Case("symlink-data", "paths", "inspect", sym(["inspect", "{m}"]), says=("w.data",)))
    add(Case("symlink-data", "paths", "predict", sym(["predict", "{m}", "cat.png"]), says=("w.data",)))
    add(Case("symlink-data", "paths", "triton", sym(["triton", "{m}", "repo"]), says=("w.data",)))
    add(Case("symlink-data", "paths", "convert", sym(["convert", "{m}", "-o", "out/"]), says=("w.data",)))
    add(Case("symlink-data", "paths", "quantize", sym(["quantize", "{m}", "--calib", "random:4", "--no-report",
                                                      "-o", "q.onnx"]), says=("w.data",)))

    def sub(cmd: list[str]) -> Callable[[Path], list[str]]:
        def build(tmp: Path) -> list[str]:
            p = write_subgraph_data(tmp)
            write_image(tmp / "cat.png")
            return [c.replace("{m}", str(p)) for c in cmd]
        return build

    add(Case("subgraph-data", "paths", "inspect", sub(["inspect", "{m}"]), says=("bias_ext",)))
    add(Case("subgraph-data", "paths", "predict", sub(["predict", "{m}", "cat.png"]), says=("bias_ext",)))
    add(Case("subgraph-data", "paths", "triton", sub(["triton", "{m}", "repo"]), says=("bias_ext",)))
    add(Case("subgraph-data", "paths", "convert", sub(["convert", "{m}", "-o", "out/"]), says=("bias_ext",)))

    # 2. overwrites
    def quant_self(tmp: Path) -> list[str]:
        p = _keep_copy(write_model(tmp / "mine.onnx", with_metadata=False))
        return ["quantize", str(p), "-o", str(p), "--calib", "random:4", "--no-report"]

    add(Case("output-is-input", "overwrite", "quantize", quant_self, check=_unchanged("mine.onnx"),
             allowed=("mine.onnx.orig",)))

    def quant_exists(tmp: Path) -> list[str]:
        _keep_copy(write_model(tmp / "old.onnx", seed=3))
        return ["quantize", _m(tmp), "-o", "old.onnx", "--calib", "random:4", "--no-report"]

    add(Case("existing-output", "overwrite", "quantize", quant_exists, check=_unchanged("old.onnx"),
             says=("--force",)))

    def csv_exists(tmp: Path) -> list[str]:
        (tmp / "layers.csv").write_text("mine\n")
        _keep_copy(tmp / "layers.csv")
        return ["profile", _m(tmp), "--csv", "layers.csv", "--peak-gflops", "100", "--bandwidth-gbs", "10"]

    add(Case("existing-output", "overwrite", "profile --csv", csv_exists, check=_unchanged("layers.csv"),
             says=("--force",)))

    def plot_exists(tmp: Path) -> list[str]:
        (tmp / "plot.png").write_bytes(b"mine")
        _keep_copy(tmp / "plot.png")
        return ["bench", _m(tmp), "--plot", "plot.png", "--iters", "1", "--warmup", "0", "--no-deviation",
                "--peak-gflops", "100"]

    add(Case("existing-output", "overwrite", "bench --plot", plot_exists, check=_unchanged("plot.png"),
             says=("--force",)))

    def config_exists(tmp: Path) -> list[str]:
        (tmp / "out").mkdir()
        (tmp / "out" / "model.required_operators.config").write_text("mine\n")
        _keep_copy(tmp / "out" / "model.required_operators.config")
        return ["convert", _m(tmp), "-o", "out/"]

    add(Case("existing-output", "overwrite", "convert .config", config_exists,
             check=_unchanged("out/model.required_operators.config"), says=("--force",)))

    def pbtxt_exists(tmp: Path) -> list[str]:
        (tmp / "repo" / "tiny").mkdir(parents=True)
        (tmp / "repo" / "tiny" / "config.pbtxt").write_text("mine\n")
        _keep_copy(tmp / "repo" / "tiny" / "config.pbtxt")
        return ["triton", _m(tmp), "repo"]

    add(Case("existing-output", "overwrite", "triton config.pbtxt", pbtxt_exists,
             check=_unchanged("repo/tiny/config.pbtxt"), says=("--force",)))

    def optimize_exists(tmp: Path) -> list[str]:
        (tmp / "shipped").mkdir()
        (tmp / "shipped" / "report.md").write_text("mine\n")
        _keep_copy(tmp / "shipped" / "report.md")
        return ["optimize", _m(tmp), "-o", "shipped", "--providers", "cpu", "--precisions", "fp32", "--batch", "1",
                "--duration", "0.1"]

    add(Case("existing-output", "overwrite", "optimize -o", optimize_exists, check=_unchanged("shipped/report.md"),
             says=("--force",)))

    def meta_exists(tmp: Path) -> list[str]:
        write_model(tmp / "saved.onnx", seed=4)
        _keep_copy(tmp / "saved.onnx")
        return ["inspect", str(write_model(tmp / "m.onnx", with_metadata=False)), "--save-metadata", "-o",
                "saved.onnx"]

    add(Case("existing-output", "overwrite", "inspect --save-metadata", meta_exists, check=_unchanged("saved.onnx"),
             says=("--force",)))

    def results_exist(tmp: Path) -> list[str]:
        (tmp / "r.jsonl").write_text("mine\n")
        _keep_copy(tmp / "r.jsonl")
        return ["batch-predict", _m(tmp), str(image_folder(tmp / "imgs", n=2, classes=1)), "-o", "r.jsonl"]

    add(Case("existing-output", "overwrite", "batch-predict", results_exist, check=_unchanged("r.jsonl"),
             says=("--force",)))

    def name_is_path(name: str) -> Callable[[Path], list[str]]:
        def build(tmp: Path) -> list[str]:
            (tmp / "out").mkdir()
            return ["export", "lenet5", "--name", name.replace("{tmp}", str(tmp)), "-o", "out/", "--no-simplify"]
        return build

    add(Case("name-is-path", "overwrite", "export --name ../x", name_is_path("../escaped"), says=("--name",)))
    add(Case("name-is-path", "overwrite", "export --name /abs", name_is_path("{tmp}/abs/escaped"), says=("--name",)))

    def meta_name_path(tmp: Path) -> list[str]:
        p = write_raw_meta(tmp / "model.onnx", {"model": "../../escaped"})
        (tmp / "repo").mkdir()
        return ["triton", str(p), "repo"]

    add(Case("metadata-name-is-path", "overwrite", "triton", meta_name_path, says=("name",)))

    # 3. metadata: types and ranges
    huge = {"input_size": "[100000, 100000]"}
    add(Case("input_size 1e5", "metadata", "predict", _predict_raw(huge), says=("input_size",), memory_mb=3000,
             timeout=120, max_rss_mb=400))
    add(Case("input_size 1e5", "metadata", "evaluate",
             lambda tmp: ["evaluate", str(write_raw_meta(tmp / "model.onnx", huge)), "--data",
                          str(image_folder(tmp / "imgs", n=2))], says=("input_size",), memory_mb=3000, timeout=120,
             max_rss_mb=400))
    add(Case("input_size 1e5", "metadata", "quantize --calib",
             lambda tmp: ["quantize", str(write_raw_meta(tmp / "model.onnx", huge)), "--calib",
                          str(image_folder(tmp / "imgs", n=2)), "--no-report", "-o", "q.onnx"], says=("input_size",),
             memory_mb=3000, timeout=120, max_rss_mb=400))
    add(Case("input_size 1e5", "metadata", "inspect",
             lambda tmp: ["inspect", str(write_raw_meta(tmp / "model.onnx", huge))], expect=0, max_rss_mb=400,
             check=lambda o, t: "" if "invalid" in o.stdout else "bad value not flagged"))
    add(Case("input_size 1e5", "metadata", "batch-predict",
             lambda tmp: ["batch-predict", str(write_raw_meta(tmp / "model.onnx", huge)),
                          str(image_folder(tmp / "imgs", n=2, classes=1)), "-o", "r.jsonl"],
             says=("input_size",), memory_mb=3000, timeout=120, max_rss_mb=400))
    add(Case("input_size 0", "metadata", "predict", _predict_raw({"input_size": "[0, -3]"}), says=("input_size",)))
    add(Case("mean 'abc'", "metadata", "predict", _predict_raw({"mean": "abc"}), says=("mean",)))
    add(Case("std {a:1}", "metadata", "predict", _predict_raw({"std": '{"a": 1}'}), says=("std",)))
    add(Case("std 0", "metadata", "predict", _predict_raw({"std": "[0, 0, 0]"}), says=("std",)))
    add(Case("std NaN", "metadata", "predict", _predict_raw({"std": "[NaN, 0.2, 0.2]"}), says=("std",)))
    add(Case("--std 0", "metadata", "predict", _predict_raw({}, ("--std", "0")), says=("--std",)))
    add(Case("--std nan", "metadata", "predict", _predict_raw({}, ("--std", "nan")), says=("--std",)))
    add(Case("--size 100000", "metadata", "predict",
             lambda tmp: ["predict", str(write_model(tmp / "model.onnx", size=32, with_metadata=False)),
                          str(write_image(tmp / "cat.png")), "--size", "100000"], says=("size",), memory_mb=3000))
    add(Case("std 0", "metadata", "inspect", lambda tmp: ["inspect", str(write_raw_meta(tmp / "m.onnx",
                                                                                          {"std": "[0, 0, 0]"}))],
             expect=0, check=lambda o, t: "" if "invalid" in o.stdout else "bad value not flagged"))
    add(Case("mean 'abc'", "metadata", "quantize",
             lambda tmp: ["quantize", str(write_raw_meta(tmp / "m.onnx", {"mean": "abc"})), "--calib",
                          str(image_folder(tmp / "imgs", n=2, classes=1)), "--no-report", "-o", "q.onnx"],
             says=("mean",)))
    add(Case("1e6 labels", "metadata", "inspect",
             lambda tmp: ["inspect", _m(tmp, metadata=_labels_meta(1_000_000))], expect=0,
             check=_small_output(2000)))

    # 4. images
    add(Case("bomb 20000^2", "images", "predict",
             lambda tmp: ["predict", _m(tmp), str(write_png_bomb(tmp / "bomb.png", 20000, 20000))],
             says=("bomb.png",), memory_mb=3000))
    add(Case("bomb 10000^2", "images", "predict",
             lambda tmp: ["predict", _m(tmp), str(write_png_bomb(tmp / "bomb.png", 10000, 10000))],
             says=("bomb.png",), memory_mb=3000))
    add(Case("bad image in folder", "images", "batch-predict",
             lambda tmp: ["batch-predict", _m(tmp), str(image_folder(tmp / "imgs", bad=write_truncated_image)),
                          "-o", "r.jsonl"], expect=0, allowed=("r.jsonl",), check=_skip_line))
    add(Case("bad image in folder --strict", "images", "batch-predict",
             lambda tmp: ["batch-predict", _m(tmp), str(image_folder(tmp / "imgs", bad=write_truncated_image)),
                          "-o", "r.jsonl", "--strict"], says=("zz_bad.png",)))
    add(Case("bad image in folder", "images", "evaluate",
             lambda tmp: ["evaluate", _m(tmp), "--data", str(image_folder(tmp / "imgs", bad=write_truncated_image))],
             expect=0, check=_skip_line))
    add(Case("bad image in folder", "images", "quantize --calib",
             lambda tmp: ["quantize", _m(tmp), "--calib", str(image_folder(tmp / "imgs", bad=write_truncated_image)),
                          "--no-report", "-o", "q.onnx"], expect=0, allowed=("q.onnx",), check=_skip_line))
    add(Case("bomb in folder --strict", "images", "quantize --calib",
             lambda tmp: ["quantize", _m(tmp), "--calib", str(image_folder(
                 tmp / "imgs", bad=lambda p: write_png_bomb(p, 20000, 20000))), "--no-report", "-o", "q.onnx",
                 "--strict"], says=("zz_bad.png",), memory_mb=3000))

    # 6. printable output
    add(Case("ESC in labels", "printable", "predict",
             lambda tmp: ["predict", _m(tmp, metadata={"labels": [HOSTILE] * 10}), str(write_image(tmp / "c.png"))],
             expect=0))
    add(Case("ESC in metadata", "printable", "inspect",
             lambda tmp: ["inspect", _m(tmp, metadata={"model": HOSTILE, "labels": [HOSTILE] * 10})], expect=0))
    add(Case("ESC in file name", "printable", "predict",
             lambda tmp: ["predict", str(write_model(tmp / f"{HOSTILE}.onnx", with_metadata=False)),
                          str(write_image(tmp / "c.png"))], expect=0))

    # 7. file modes
    add(Case("umask 022", "modes", "quantize",
             lambda tmp: ["quantize", _m(tmp), "--calib", "random:4", "--no-report", "-o", "q.onnx"], expect=0,
             allowed=("q.onnx",), check=_mode("q.onnx", 0o644)))

    def force_mode(tmp: Path) -> list[str]:
        write_model(tmp / "q.onnx", seed=5)
        os.chmod(tmp / "q.onnx", 0o640)
        return ["quantize", _m(tmp), "--calib", "random:4", "--no-report", "-o", "q.onnx", "--force"]

    add(Case("--force keeps mode", "modes", "quantize", force_mode, expect=0, allowed=("q.onnx",),
             check=_mode("q.onnx", 0o640)))
    add(Case("umask 022", "modes", "profile --csv",
             lambda tmp: ["profile", _m(tmp), "--csv", "l.csv", "--peak-gflops", "100", "--bandwidth-gbs", "10"],
             expect=0, allowed=("l.csv",), check=_mode("l.csv", 0o644)))

    def triton_modes(o: Outcome, tmp: Path) -> str:
        return _mode("repo/tiny/config.pbtxt", 0o644)(o, tmp) or _mode("repo/tiny/1", 0o755)(o, tmp) or \
            _mode("repo/tiny/1/model.onnx", 0o644)(o, tmp)

    add(Case("umask 022", "modes", "triton", lambda tmp: ["triton", _m(tmp), "repo"], expect=0, allowed=("repo",),
             check=triton_modes))
    add(Case("umask 022", "modes", "export",
             lambda tmp: ["export", "lenet5", "-o", "new/", "--no-simplify", "--no-validate"], expect=0,
             allowed=("new",), check=_mode("new/lenet5.onnx", 0o644)))

    # 8. smaller
    def unwritable(tmp: Path) -> list[str]:
        (tmp / "afile").write_text("x")
        return ["quantize", _m(tmp), "--calib", "random:4", "--no-report", "-o", "afile/q.onnx"]

    add(Case("output under a file", "smaller", "quantize", unwritable, says=("afile",)))
    add(Case("output under a file", "smaller", "profile --csv",
             lambda tmp: [(tmp / "afile").write_text("x") and "profile", _m(tmp), "--csv", "afile/l.csv"],
             says=("afile",)))
    add(Case("cache is a file", "smaller", "predict",
             lambda tmp: [(tmp / "cachefile").write_text("x") and "predict",
                          str(write_model(tmp / "m.onnx", with_metadata=False)), str(write_image(tmp / "c.png"))],
             env={"EDGECNN_CACHE_DIR": "{tmp}/cachefile"}, says=("cache",)))
    add(Case("unknown element type", "smaller", "inspect",
             lambda tmp: ["inspect", str(write_unknown_dtype(tmp / "m.onnx"))], expect=0))
    add(Case("ORT rejects a valid file", "smaller", "predict",
             lambda tmp: ["predict", str(write_ort_rejects(tmp / "m.onnx")), str(write_image(tmp / "c.png"))],
             check=lambda o, t: "said 'corrupt or truncated'" if "corrupt or truncated" in o.stderr else ""))
    add(Case("ORT rejects a valid file", "smaller", "quantize",
             lambda tmp: ["quantize", str(write_ort_rejects(tmp / "m.onnx")), "--calib", "random:4", "--no-report"],
             says=("quantization of m.onnx failed",)))
    add(Case("failing file", "smaller", "predict",
             lambda tmp: ["predict", str(write_model(tmp / "m.onnx", with_metadata=False)),
                          str(write_png_bomb(tmp / "bomb.png", 20000, 20000))], check=_no_cache_copies,
             memory_mb=3000))
    add(Case("failed convert", "smaller", "convert",
             lambda tmp: ["convert", str(write_ort_rejects(tmp / "m.onnx")), "-o", "newdir/"],
             check=lambda o, t: "left an empty newdir/" if (t / "newdir").exists() else ""))
    return cases


CASES = _cases()


def table(rows: list[tuple[Case, Outcome, list[str]]]) -> str:
    """A markdown table of the matrix."""
    lines = ["| class | input | command | exit | error lines | traceback | outside / leftovers | peak MB | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case, o, found in rows:
        extra = ", ".join(o.created + o.changed + o.hidden)[:60] or "-"
        verdict = "ok" if not found else "; ".join(found)[:120]
        lines.append(f"| {case.klass} | {case.id} | {case.command} | {o.code} | {len(o.errors)} | "
                     f"{'yes' if o.traceback else 'no'} | {extra} | {o.peak_rss_mb:.0f} | {verdict} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    only = sys.argv[1:]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i, case in enumerate(CASES):
            if only and not any(s in f"{case.klass} {case.id} {case.command}" for s in only):
                continue
            tmp = Path(d) / f"case{i}"
            o = run_case(case, tmp)
            found = problems(case, o, tmp)
            rows.append((case, o, found))
            print(json.dumps({"case": f"{case.klass}/{case.id}/{case.command}", "code": o.code,
                              "problems": found, "err": o.stderr[-300:]}), file=sys.stderr, flush=True)
    print(table(rows))
