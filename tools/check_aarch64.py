"""The aarch64 check: files made on x86 run on an emulated aarch64 with the torch-free install, and agree with x86.

    tools/setup_aarch64.sh && python tools/check_aarch64.py          # writes docs/results/aarch64.md (and .json)

Files (LeNet-5 trained on scikit-learn's digits, so top-1/top-5 mean something; small, since the emulator runs a
ResNet-50 at tens of seconds per image): fp32 and fp16 exports, int8 QDQ from ``edgecnn quantize`` (x86's uint8
activations), an ORT-format file from ``edgecnn convert --target-platform arm``, a foreign NHWC file (the fp32 net
behind a Transpose, no metadata, as tf2onnx writes them), and the file ``edgecnn optimize --target-arch aarch64``
chose (int8 with int8 activations, chosen by accuracy and size). ``tools/aarch64_driver.py`` runs the same code on
both sides: the Engine's preprocessing and logits on the same images, ``predict``, ``evaluate`` and
``bench --iters 1``. optimize itself is never run emulated: it measures each candidate in a child process started
from ``sys.executable``, which an emulated process cannot start without binfmt_misc.

Agreement, per file: the preprocessed inputs (max |difference|), top-1 and top-5 (the same five classes in the same
order, per image), the logits' SQNR against x86 (dB) and the bound each precision must meet (:data:`BOUNDS`). The
tests (``tests/test_aarch64.py``) use the same functions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AARCH64_DIR = Path(os.environ.get("EDGECNN_AARCH64_DIR") or ROOT / "third_party" / "aarch64")
DRIVER = ROOT / "tools" / "aarch64_driver.py"
#: images the Engine and predict run on (held-out digits), and the evaluate folder's size
IMAGES = 24
EVAL_IMAGES = 40

#: label -> (precision, the least SQNR of the logits against x86 in dB, whether top-5 must match, why that bound)
BOUNDS: dict[str, tuple[str, float, bool, str]] = {
    "fp32": ("fp32", 100.0, True, "the same fp32 arithmetic; kernels differ only in summation order and FMA use"),
    "fp16": ("fp16", 50.0, True, "ONNX Runtime on an aarch64 with fp16 arithmetic (asimdhp, which qemu's max CPU "
             "has) runs the fp16 file's kernels in fp16, where x86 computes between Casts in fp32: the difference "
             "is fp16's own rounding (measured 140 dB with -cpu cortex-a72, which has no fp16 arithmetic)"),
    "int8": ("int8", 100.0, True, "integer kernels: identical logits expected (uint8 activations)"),
    "ort": ("fp32", 100.0, True, "the fp32 graph, optimized for arm by convert; run by onnxruntime.InferenceSession"),
    "nhwc": ("fp32", 100.0, True, "the fp32 net behind a Transpose"),
    "optimize-aarch64": ("int8", 100.0, True, "integer kernels: identical logits expected (int8 activations)"),
}


def _log(msg: str) -> None:
    print(f"check_aarch64: {msg}", file=sys.stderr, flush=True)


def emulated_python(folder: Path = AARCH64_DIR) -> Path | None:
    """The launcher ``tools/setup_aarch64.sh`` writes, or None when the environment is not set up."""
    launcher = folder / "python"
    return launcher if launcher.is_file() and os.access(launcher, os.X_OK) else None


#: the same on OpenVINO (x86 OpenVINO is the reference of the aarch64 OpenVINO rows)
OPENVINO_BOUNDS: dict[str, tuple[str, float, bool, str]] = {
    "fp32": BOUNDS["fp32"],
    "fp16": ("fp32", 100.0, True, "OpenVINO's CPU plugin runs an fp16 file at f32 (edgecnn asks f32 on both)"),
    "nhwc": BOUNDS["nhwc"],
    **{label: ("int8", 30.0, False, "OpenVINO's x86 and aarch64 CPU plugins execute the quantized layers "
               "differently: the logits differ by about one int8 step (about as much as int8 differs from fp32), also "
               "with INFERENCE_PRECISION_HINT=f32 on both; top-1 must match, top-5 may swap near-ties")
       for label in ("int8", "optimize-aarch64")},
}
#: the runtimes every file runs on, on both sides
PROVIDERS = ("cpu", "openvino")


# --------------------------------------------------------------------------- the files, made on x86


def foreign_nhwc(fp32: Path, out: Path) -> Path:
    """The fp32 net as a foreign tf2onnx-style file: an NHWC input, a Transpose to NCHW, no edgecnn metadata."""
    import onnx
    from onnx import helper

    model = onnx.load(str(fp32))
    graph = model.graph
    inp = graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in inp.type.tensor_type.shape.dim]
    old = inp.name
    for node in graph.node:
        node.input[:] = ["input_1:0_nchw" if i == old else i for i in node.input]
    graph.node.insert(0, helper.make_node("Transpose", ["input_1:0"], ["input_1:0_nchw"], perm=[0, 3, 1, 2]))
    new = helper.make_tensor_value_info("input_1:0", inp.type.tensor_type.elem_type,
                                        [dims[0], dims[2], dims[3], dims[1]])
    graph.input.remove(inp)
    graph.input.insert(0, new)
    del model.metadata_props[:]
    model.producer_name = "tf2onnx"
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def make_files(work: Path, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Every file of the check, the images and the evaluate folder, made on this (x86) machine."""
    from edgecnn.exporters import export
    from edgecnn.exporters.ort_format import to_ort_format
    from edgecnn.optimize import optimize
    from edgecnn.quantize import QuantizeOptions, quantize
    from edgecnn.tasks.digits import digits_task, load_split, write_image_folder, write_images

    work.mkdir(parents=True, exist_ok=True)
    log("the digits task (LeNet-5 trained once on scikit-learn's digits, then cached)")
    task = digits_task()
    split = load_split()
    images = sorted(str(p) for p in write_images(split.test_images[:IMAGES], work / "images").glob("*.png"))
    dataset = write_image_folder(split.test_images[:EVAL_IMAGES], split.test_labels[:EVAL_IMAGES], work / "eval")
    files: dict[str, Path] = {}
    files["fp32"] = export("lenet5", work / "lenet5.onnx", weights=task.weights, force=True, progress=False).path
    files["fp16"] = export("lenet5", work / "lenet5.fp16.onnx", weights=task.weights, precision="fp16", force=True,
                           progress=False).path
    log("int8 QDQ (edgecnn quantize, uint8 activations as on x86), ORT format (--target-platform arm), NHWC")
    calib = write_images(split.train_images[:64], work / "calib")
    quantize(files["fp32"], work / "lenet5.int8.onnx", calib=str(calib), options=QuantizeOptions(calib_size=64))
    files["int8"] = work / "lenet5.int8.onnx"
    files["ort"] = to_ort_format(files["fp32"], work / "ort", target_platform="arm")["ort"]
    files["nhwc"] = foreign_nhwc(files["fp32"], work / "lenet5.nhwc.onnx")
    log("edgecnn optimize lenet5 --target-arch aarch64 (on x86; only its chosen file runs emulated)")
    report = optimize("lenet5", target_arch="aarch64", providers=["cpu"], batches=(1,), duration=0.3,
                      output=work / "optimize", progress=False)
    if report.get("chosen"):
        files["optimize-aarch64"] = Path(report["chosen"]["path"])
    return {"files": {k: str(v) for k, v in files.items()}, "images": images, "dataset": str(dataset),
            "optimize": {k: report.get(k) for k in ("chosen", "chosen_by", "timing_note", "target_arch",
                                                    "int8_activation_type")}}


# --------------------------------------------------------------------------- running the driver


def make_plan(made: dict[str, Any]) -> dict[str, Any]:
    """What the driver runs: every file on ONNX Runtime's CPU provider and on OpenVINO (not the ORT-format file,
    which only ONNX Runtime reads), with the three commands."""
    int8 = {"int8", "optimize-aarch64"}
    return {"files": made["files"], "images": made["images"], "dataset": made["dataset"], "commands": True,
            "providers": list(PROVIDERS), "skip": {"ort": ["openvino"]}, "ort_preprocess_from": made["files"]["fp32"],
            # the file's own precision, asked explicitly: auto would measure on x86 (OpenVINO's bf16 on a bf16 CPU)
            "precision": {**{label: "int8" if label in int8 else "fp16" if label == "fp16" else "fp32"
                             for label in made["files"]}, "fp16@openvino": "fp32"}}


def run_driver(python: list[str], plan: dict[str, Any], out: Path, *, timeout: float = 1800,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """``tools/aarch64_driver.py`` under ``python`` (a command); its ``driver.json``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    full_env = {**os.environ, "EDGECNN_CACHE_DIR": str(out / "cache"), **(env or {})}
    full_env.pop("EDGECNN_EMULATED", None)
    proc = subprocess.run([*python, str(DRIVER), str(out / "plan.json"), str(out)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)
    if proc.returncode != 0 or not (out / "driver.json").is_file():
        raise RuntimeError(f"{' '.join(python)} {DRIVER.name} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout)[-2000:]}")
    return json.loads((out / "driver.json").read_text())


# --------------------------------------------------------------------------- agreement


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10 log10(signal / noise) of ``other`` against ``reference``; inf when identical."""
    from edgecnn.metrics import sqnr_db as _sqnr

    return float(_sqnr(reference.astype(np.float64), other.astype(np.float64)))


def top5(logits: np.ndarray) -> np.ndarray:
    return np.argsort(-logits, axis=1, kind="stable")[:, :5]


def bound(key: str) -> tuple[str, float, bool, str]:
    """(precision, least SQNR in dB, why) for a row key: ``<label>`` (ONNX Runtime) or ``<label>@openvino``."""
    label, _, provider = key.partition("@")
    return (OPENVINO_BOUNDS if provider == "openvino" else BOUNDS)[label]


def agreement(label: str, ref_dir: Path, arm_dir: Path, ref: dict[str, Any], arm: dict[str, Any]) -> dict[str, Any]:
    """One row of the table: inputs, top-1, top-5, SQNR, the bound, and whether the three commands agreed."""
    precision, least, top5_needed, why = bound(label)
    base, _, provider = label.partition("@")
    row: dict[str, Any] = {"file": base, "runtime": provider or "cpu", "precision": precision, "bound_db": least,
                           "top5_required": top5_needed, "why": why}
    r, a = ref["files"].get(label, {}), arm["files"].get(label, {})
    ref_label = label
    if provider and "OpenVINO cannot compile" in str(r.get("error")) and "error" not in a \
            and "error" not in ref["files"].get(base, {"error": "not run"}):
        # OpenVINO on this x86 CPU cannot compile the file (2026.4 on a Xeon with AMX and an int8-activation QDQ
        # file: no executor): the reference is ONNX Runtime on x86, said in the row
        row["reference"] = f"ONNX Runtime on x86 ({r['error'].split(': ', 1)[-1][:160]})"
        ref_label, r = base, ref["files"][base]
    if "error" in r or "error" in a or not r or not a:
        row["error"] = a.get("error") or r.get("error") or "not run"
        return row
    xr, xa = np.load(ref_dir / f"{ref_label}.x.npy"), np.load(arm_dir / f"{label}.x.npy")
    yr, ya = np.load(ref_dir / f"{ref_label}.logits.npy"), np.load(arm_dir / f"{label}.logits.npy")
    row.update({
        "images": int(len(yr)), "inputs_max_abs_diff": float(np.abs(xr.astype(np.float64) - xa).max()),
        "top1_match": float(np.mean(yr.argmax(1) == ya.argmax(1))),
        "top5_match": float(np.mean(np.all(top5(yr) == top5(ya), axis=1))),
        "sqnr_db": sqnr_db(yr, ya), "max_abs_diff": float(np.abs(yr.astype(np.float64) - ya).max()),
        "identical": bool(np.array_equal(yr, ya)),
    })
    row["within_bound"] = (row["top1_match"] == 1.0 and (row["top5_match"] == 1.0 or not top5_needed)
                           and row["sqnr_db"] >= least)
    row["commands"] = commands_agree(r, a) if "predict" in a else {}
    return row


def _classes(predict: dict[str, Any]) -> list[list[Any]]:
    return [[p.get("index", p.get("class")) for p in res.get("top", res.get("predictions", []))]
            for res in (predict.get("json") or {}).get("results", [])]


def commands_agree(ref: dict[str, Any], arm: dict[str, Any]) -> dict[str, Any]:
    """Did ``predict``, ``evaluate`` and ``bench --iters 1`` run on both sides, and agree where they should?"""
    out: dict[str, Any] = {}
    for cmd in ("predict", "evaluate", "bench"):
        r, a = ref.get(cmd) or {}, arm.get(cmd) or {}
        ran = r.get("code") == 0 and a.get("code") == 0 and a.get("json") is not None
        out[cmd] = {"ran": ran, "error": None if ran else (a.get("stderr") or r.get("stderr") or "")[-500:]}
    if out["predict"]["ran"]:
        out["predict"]["same_top5"] = _classes(ref["predict"]) == _classes(arm["predict"])
    if out["evaluate"]["ran"]:
        er, ea = ref["evaluate"]["json"], arm["evaluate"]["json"]
        out["evaluate"]["same_accuracy"] = (er.get("top1"), er.get("top5")) == (ea.get("top1"), ea.get("top5"))
        out["evaluate"]["top1"] = ea.get("top1")
    if out["bench"]["ran"]:
        warns = " ".join(arm["bench"]["json"].get("warnings") or [])
        out["bench"]["says_emulated"] = "timings are emulated" in warns
    return out


# --------------------------------------------------------------------------- the results file


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make the files, run the driver on x86 and emulated, and compare."""
    python = emulated_python(Path(args.aarch64_dir))
    if python is None:
        raise SystemExit(f"check_aarch64: error: no emulated Python in {args.aarch64_dir}: run tools/setup_aarch64.sh")
    work = Path(args.work)
    made = make_files(work / "files")
    plan = make_plan(made)
    _log("the reference run on x86")
    ref = run_driver([sys.executable], plan, work / "x86")
    _log(f"the emulated aarch64 run ({python})")
    arm = run_driver([str(python)], plan, work / "aarch64")
    rows = [agreement(key, work / "x86", work / "aarch64", ref, arm) for key in ref["files"]]
    qemu = subprocess.run([str(Path(args.aarch64_dir) / "qemu" / "usr" / "bin" / "qemu-aarch64"), "--version"],
                          capture_output=True, text=True).stdout.splitlines()[:1]
    doctor = (arm.get("doctor") or {}).get("json") or {}
    return {"rows": rows, "optimize": made["optimize"], "machine": results.machine(),
            "x86": {k: ref.get(k) for k in ("machine", "python", "onnxruntime", "openvino", "numpy")},
            "aarch64": {**{k: arm.get(k) for k in ("machine", "python", "onnxruntime", "openvino", "numpy",
                                                   "emulation", "torch_importable")},
                        "qemu": qemu[0] if qemu else None, "cpu": doctor.get("cpu")}}


def render(data: dict[str, Any]) -> str:
    """The agreement table: file x runtime x precision, top-5/top-1 match, SQNR against x86, the bound."""
    rows = []
    for r in data["rows"]:
        if "error" in r:
            rows.append([r["file"], r["runtime"], r["precision"], "error", "", "", "", r["error"][:120]])
            continue
        c = r["commands"]
        cmds = ", ".join(f"{k} {'ok' if v['ran'] else 'FAILED'}" for k, v in c.items()) or \
            "n/a (ORT format: onnxruntime.InferenceSession)"
        sq = "identical" if r["identical"] else f"{r['sqnr_db']:.1f}"
        need = f">= {r['bound_db']:g} dB, top-1" + (" and top-5" if r["top5_required"] else "")
        rows.append([r["file"], r["runtime"], r["precision"], f"{100 * r['top5_match']:.0f}%",
                     f"{100 * r['top1_match']:.0f}%", sq, need + (" (met)" if r["within_bound"] else " (MISSED)"),
                     cmds])
    return results.table(rows, ["file", "runtime", "precision", "top-5 match", "top-1 match", "SQNR dB vs x86",
                                "bound", "predict, evaluate, bench --iters 1"])


def notes(data: dict[str, Any]) -> str:
    """The versions that ran on each side, what the columns mean and why each bound is what it is."""
    a, x, o = data["aarch64"], data["x86"], data["optimize"]
    feats = ", ".join((a.get("cpu") or {}).get("flag_names") or []) or "none listed"
    ch = o.get("chosen") or {}
    whys = {}
    for r in data["rows"]:
        whys.setdefault(r["why"], []).append(f"{r['file']} on {r['runtime']}")
    lines = [
        f"Emulated: {a['machine']}, Python {a['python']}, onnxruntime {a['onnxruntime']}, openvino "
        f"{a.get('openvino')}, numpy {a['numpy']}, under {a.get('qemu')} (CPU features it announces: {feats}); "
        f"torch importable there: {'yes' if a['torch_importable'] else 'no'}. Reference: {x['machine']}, Python "
        f"{x['python']}, onnxruntime {x['onnxruntime']}, openvino {x.get('openvino')}, numpy {x['numpy']}.",
        "",
        f"LeNet-5 trained on scikit-learn's digits, {data['rows'][0].get('images', '?')} held-out images. Top-5 "
        "match: the same five classes in the same order, per image; SQNR: the aarch64 logits against x86's on the "
        f"same runtime and images. The optimize file: {ch.get('precision')} with {o.get('int8_activation_type')} "
        f"activations, chosen on x86 by {o.get('chosen_by')} for {o.get('target_arch')}.",
        "",
        "Bounds:",
        "",
    ]
    lines += [f"- {', '.join(where)}: {why}." for why, where in whys.items()]
    lines += [f"- {r['file']} on {r['runtime']}: compared with {r['reference']}." for r in data["rows"]
              if r.get("reference")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aarch64-dir", default=str(AARCH64_DIR), help="what tools/setup_aarch64.sh set up")
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "aarch64"), help="where the files and runs go")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    ap.add_argument("--files-only", metavar="DIR", help="make the files in DIR, print what was made (JSON), and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.files_only:
        print(json.dumps(make_files(Path(args.files_only), log=lambda _m: None), default=str))
        return 0
    if args.render:
        publish(args, results.load(args.render))
        return 0
    data = {**run(args), "command": results.command(__file__, argv)}
    if args.json_out:
        results.save(args.json_out, data)
    publish(args, data)
    return 0 if all(r.get("within_bound") for r in data["rows"]) else 1


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text and write ``aarch64`` (unless --no-results)."""
    print(results.write(args, "aarch64", "aarch64 under emulation: agreement with x86", render(data), data,
                        notes(data)))


if __name__ == "__main__":
    sys.exit(main())
