"""One process that runs what the aarch64 check compares, on whichever machine runs it: the x86 reference (.venv's
Python) and the emulated aarch64 one (``third_party/aarch64/python``, from ``tools/setup_aarch64.sh``).

    python tools/aarch64_driver.py PLAN.json OUT_DIR

PLAN.json: ``{"files": {label: path}, "images": [png...], "dataset": ImageFolder, "commands": bool, "providers":
[...], "skip": {label: [provider...]}}``. For each file on each provider (``cpu``: ``<label>``, else
``<label>@<provider>``): the Engine's preprocessed inputs and logits on the images (``OUT_DIR/<key>.x.npy``,
``.logits.npy``), and,
with ``commands``, ``predict --json --top 5``, ``evaluate --json`` and ``bench --iters 1 --json`` through the CLI's
own entry point (in this process: under the emulator a process start costs seconds; nothing here spawns another).
Also ``doctor --json``. Writes ``OUT_DIR/driver.json``; a file that fails records its one-line error, it does not
stop the others. Imports edgecnn and its torch-free dependencies only, as on a device.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def cli(*args: str) -> dict[str, Any]:
    """``edgecnn ARGS`` in this process: exit code, stdout (parsed when JSON), stderr."""
    from edgecnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = int(e.code or 0)
    text = out.getvalue()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    return {"args": list(args), "code": code, "json": parsed, "stdout": text if parsed is None else "",
            "stderr": err.getvalue()[-4000:]}


def run_file(label: str, path: str, plan: dict[str, Any], out: Path, provider: str = "cpu") -> dict[str, Any]:
    """The Engine's inputs and logits for one file on ``provider``, then the three commands."""
    import numpy as np

    from edgecnn.runtime import Engine, load_images

    rec: dict[str, Any] = {"path": path, "provider": provider}
    precisions = plan.get("precision") or {}
    precision = precisions.get(label) or precisions.get(label.partition("@")[0], "auto")
    try:
        if path.endswith(".ort"):  # ORT format: ONNX Runtime's own API, as a mobile app runs it (edgecnn opens .onnx)
            import onnxruntime as ort

            x = load_images(plan["images"], Engine(plan["ort_preprocess_from"], provider="cpu").preprocess_config())
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            y = np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])
            np.save(out / f"{label}.x.npy", x)
            np.save(out / f"{label}.logits.npy", y.reshape(len(x), -1).astype(np.float32))
            rec["engine"] = {"providers": list(session.get_providers()), "precision": "fp32",
                             "precision_reason": "onnxruntime.InferenceSession on the ORT-format file"}
            return rec
        engine = Engine(path, provider=provider, precision=precision)
        x = load_images(plan["images"], engine.preprocess_config())
        y = np.asarray(engine.run(x))
        np.save(out / f"{label}.x.npy", x)
        np.save(out / f"{label}.logits.npy", y.reshape(len(x), -1).astype(np.float32))
        rec["engine"] = {"providers": list(engine.info.providers), "precision": engine.info.precision,
                         "precision_reason": engine.info.precision_reason}
    except Exception as e:  # noqa: BLE001 - one file's failure is its row, the others still run
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["traceback"] = traceback.format_exc()[-3000:]
        return rec
    if plan.get("commands", True):
        p = ("--provider", provider, "--precision", precision)
        rec["predict"] = cli("predict", path, *plan["images"][:4], "--top", "5", *p, "--json")
        rec["evaluate"] = cli("evaluate", path, "--data", plan["dataset"], *p, "--json")
        rec["bench"] = cli("bench", path, "--iters", "1", "--warmup", "0", *p, "--json")
    return rec


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    plan = json.loads(Path(args[0]).read_text())
    out = Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    import numpy as np
    import onnxruntime as ort

    import edgecnn
    from edgecnn.runtime.emulation import emulation

    report: dict[str, Any] = {
        "machine": platform.machine(), "python": platform.python_version(), "edgecnn": edgecnn.__version__,
        "onnxruntime": ort.__version__, "numpy": np.__version__, "emulation": emulation().as_dict(),
        "torch_importable": _importable("torch"), "files": {},
    }
    try:
        import openvino

        report["openvino"] = openvino.__version__
    except ImportError:
        report["openvino"] = None
    for provider in plan.get("providers", ["cpu"]):
        for label, path in plan["files"].items():
            if provider in (plan.get("skip") or {}).get(label, []):
                continue
            key = label if provider == "cpu" else f"{label}@{provider}"
            report["files"][key] = run_file(key, path, plan, out, provider)
    report["doctor"] = cli("doctor", "--json")
    report["doctor_text"] = cli("doctor")["stdout"]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "driver.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    sys.exit(main())
