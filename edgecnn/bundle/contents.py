"""What goes into a bundle, as plain data: the preprocessing, the runtime choice, the READMEs and the manifest.

Everything here is derived from one place, the model file's metadata (resolved the way the Python runtime resolves
it: :func:`edgecnn.io_spec.detect`), so the JSON, the READMEs and what ``verify`` runs cannot disagree.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from edgecnn import metadata as M
from edgecnn.io_spec import InputSpec

#: the manifest's name and format tag (a bundle folder is recognised by it)
MANIFEST = "manifest.json"
FORMAT = "edgecnn-bundle/1"
PREPROCESSING = "preprocessing.json"
RUNTIME = "runtime.json"
LABELS = "labels.txt"
#: target -> (folder of its README, title, ONNX Runtime package, file the app loads)
TARGETS: dict[str, tuple[str, str, str, str]] = {
    "cpp": ("cpp", "C++ (Linux, Windows, macOS, embedded Linux)", "ONNX Runtime C/C++ API (official release archive)",
            "onnx"),
    "android": ("android", "Android (Kotlin)", "Maven com.microsoft.onnxruntime:onnxruntime-android", "ort"),
    "ios": ("ios", "iOS (Swift)", "CocoaPods onnxruntime-objc", "ort"),
}
#: the runtime every target has: ONNX Runtime's CPU execution provider (the registry's backend of that name)
PORTABLE = "cpu"
NOT_BUILT = ("Not built on a device. edgecnn generated this page from the model's metadata; the C++ steps are "
             "those of edgecnn's `examples/cpp`, whose output the parity tests compare with Python's on Linux "
             "x86-64. Nothing here has been compiled into an Android or iOS app or run on a phone.")


def _dims(dims: Sequence[Any]) -> list[Any]:
    return [d if isinstance(d, int) and d > 0 else (d or None) for d in dims]


def output_entry(value: Any) -> dict[str, Any]:
    """One graph output (an ``onnx.ValueInfoProto``) as ``{name, shape, dtype}``."""
    from onnx import helper

    tt = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
    return {"name": value.name, "shape": _dims(dims), "dtype": str(helper.tensor_dtype_to_np_dtype(tt.elem_type))}


#: what an app does with a task's outputs (torchvision's post-processing, as edgecnn.runtime.vision does it)
POST_PROCESSING = {
    "graph": "NMS ran in the graph (ONNX NonMaxSuppression): boxes (K, 4), scores (K), labels (K) and batch_index "
             "(K) are the kept detections of the whole batch; per image, take the rows whose batch_index is the "
             "image's, sort them by score (stable on ties) and keep the best detections_per_image",
    "host": "NMS runs in the app: boxes (N, A, 4) and class scores (N, A, C) of every anchor, class 0 the "
            "background; per class 1..C-1 keep the scores above score_threshold, the best topk_candidates, then "
            "greedy NMS at iou_threshold (a box goes when its IoU with a kept, better one is above it); then the "
            "best detections_per_image of all classes (torchvision's SSD.postprocess_detections)",
    "segmentation": "masks (N, C, H, W): per pixel, the class with the highest score (first on ties); class 0 "
                    "the background",
}


def task_output(meta: Mapping[str, Any], outputs: Sequence[Mapping[str, Any]], labels_file: str | None
                ) -> dict[str, Any]:
    """The ``output`` of a detection or segmentation file's ``preprocessing.json``: every output with its role,
    the NMS placement and thresholds, the box format and how to map boxes back to the picture."""
    from edgecnn.runtime.vision import output_roles

    roles = output_roles(meta)
    task = meta.get("task")
    entries = [{**o, "role": roles.get(o["name"], {}).get("role"), "batch": roles.get(o["name"], {}).get("batch",
                                                                                                          True)}
               for o in outputs]
    out: dict[str, Any] = {"task": task, "outputs": entries, "classes": meta.get("num_classes"),
                           "background_class": 0, "labels_file": labels_file}
    if task == "detection":
        nms = dict(meta.get("nms") or {})
        out.update({"nms": nms, "box_format": meta.get("box_format", "xyxy"),
                    "post_processing": POST_PROCESSING.get(str(nms.get("placement")), ""),
                    "boxes": "(x1, y1, x2, y2) in input pixels; with the stretch resize, multiply x by "
                             "image_width / input_width and y by image_height / input_height for the "
                             "picture's pixels"})
    else:
        out["post_processing"] = POST_PROCESSING["segmentation"]
    return out


def preprocessing(spec: InputSpec, meta: Mapping[str, Any], output: tuple[str, list[Any], str],
                  labels_file: str | None, outputs: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """``preprocessing.json``: the resolved steps, the input and output, and every key of the metadata contract
    (:data:`edgecnn.metadata.KEYS`; the file's value, or the value the Python runtime resolves for a
    preprocessing key the file lacks; None where neither applies). A detection or segmentation file's ``output``
    lists every output (``outputs``) with its role, and the post-processing (:func:`task_output`)."""
    c = spec.config
    resolved = spec.metadata()
    contract = {key: resolved.get(key, meta.get(key)) for key in M.KEYS}
    contract["io_dtype"] = c.dtype
    if contract.get("task") is None:  # a file without edgecnn.task is a classifier
        contract["task"] = meta.get("task") or "classification"
    crop = c.crop_fraction
    h, w = c.input_size
    color = "RGB" if c.channels == 3 else "L"
    order = "BGR" if c.bgr else "RGB"
    steps = [
        f"decode the image to 8-bit {'RGB' if c.channels == 3 else 'grayscale (ITU-R 601-2 luma, Pillow mode L)'}",
        (f"resize the shorter side to {c.resize} pixels (bilinear, antialiased as Pillow's BILINEAR), then center "
         f"crop {h}x{w}" if crop is not None else f"resize the whole image to {h}x{w} (bilinear, no crop)"),
        f"per channel in {order} order: (pixel / 255 - mean[c]) / std[c] in float32",
        f"lay out as {c.layout} [1, {', '.join(str(d) for d in c.sample_shape)}]"
        + (", then round to float16" if c.dtype == "float16" else ""),
    ]
    out_name, out_dims, out_dtype = output
    classes = spec.num_classes
    if contract["task"] != "classification":
        for key in ("task", "outputs", "nms", "resize", "box_format"):  # the task keys, as the file says them
            contract[key] = meta.get(key, contract.get(key))
    return {
        "format": "edgecnn-preprocessing/1",
        "task": contract["task"],
        "input": {"name": spec.input_name, "shape": _dims(spec.input_shape), "layout": c.layout, "dtype": c.dtype},
        "image": {"decode_as": color, "channels": c.channels, "channel_order": order.lower()},
        "input_size": [h, w],
        "resize": {"filter": "bilinear (Pillow's, antialiased)", "center_crop": crop is not None,
                   "crop_fraction": crop, "shorter_side": c.resize if crop is not None else None},
        "normalize": {"scale": 1 / 255, "mean": list(c.mean), "std": list(c.std),
                      "formula": "(pixel / 255 - mean[c]) / std[c]"},
        "output": {"name": out_name, "shape": _dims(out_dims), "dtype": out_dtype, "outputs": classes,
                   "background_class": int(spec.background_class),
                   "classes": None if classes is None else classes - int(spec.background_class),
                   "scores": "softmax over the class scores, unless they already are probabilities (sum to 1)"
                             + ("; drop output 0 (background) first" if spec.background_class else ""),
                   "labels_file": labels_file} if contract["task"] == "classification"
        else task_output(meta, outputs, labels_file),
        "steps": steps,
        "contract": contract,
    }


def _family(runtime: str) -> str | None:
    """The runtime family of a backend name (``onnxruntime`` for cpu/cuda/tensorrt), None when not registered here."""
    from edgecnn.runtime.backends import registry

    try:
        return registry.get(runtime).family
    except Exception:  # noqa: BLE001 - a decision naming a plug-in not installed here
        return None


def runtime_choice(meta: Mapping[str, Any], file_precision: str) -> dict[str, Any]:
    """``runtime.json``: the runtime and precision to run (an ``edgecnn optimize`` decision the file carries, else
    ONNX Runtime's CPU provider at the file's own precision), what to fall back to, and per target what applies."""
    decision = meta.get("optimize")
    portable = {"runtime": PORTABLE, "precision": file_precision,
                "why": "ONNX Runtime's CPU execution provider runs every file at its own precision, on every "
                       "platform edgecnn targets (the Python runtime's reference)"}
    if isinstance(decision, Mapping) and decision.get("runtime"):
        chosen = {
            "runtime": str(decision["runtime"]), "precision": str(decision.get("precision") or file_precision),
            "file_precision": str(decision.get("file_precision") or file_precision),
            "batch": decision.get("batch"), "threads": decision.get("threads"),
            "source": "the file's 'edgecnn optimize' decision (edgecnn.optimize metadata)",
            "measured_on": {"cpu": decision.get("cpu"), "arch": decision.get("arch"), "date": decision.get("date"),
                            "runtime_versions": decision.get("runtime_versions")},
            "p50_ms": decision.get("p50_ms"), "speedup_vs_fp32": decision.get("speedup_vs_fp32"),
            "accuracy": decision.get("accuracy"), "budget": decision.get("budget"),
        }
        note = (f"measured on {decision.get('cpu') or 'an unnamed CPU'}: the choice and its speed-up hold there; "
                "on other hardware run 'edgecnn optimize' again or use the fallback")
    else:
        chosen = {"runtime": PORTABLE, "precision": file_precision, "file_precision": file_precision, "batch": None,
                  "threads": None, "source": "default: the file records no 'edgecnn optimize' decision"}
        note = "no decision recorded: run 'edgecnn optimize FILE -o DIR' and bundle the file it writes to choose"
    same = chosen["runtime"] == PORTABLE and chosen["precision"] == file_precision
    family = _family(chosen["runtime"])
    ort_family = family is not None and family == _family(PORTABLE)
    targets = {}
    for key, (_, title, package, kind) in TARGETS.items():
        if key == "cpp" and ort_family:
            run = {"runtime": chosen["runtime"], "precision": chosen["precision"]}
        else:
            run = {"runtime": PORTABLE, "precision": file_precision}
        why = ("the chosen runtime" if run["runtime"] == chosen["runtime"] and run["precision"] == chosen["precision"]
               else f"{chosen['runtime']} {chosen['precision']} is not available to {title}: ONNX Runtime's CPU "
                    "provider at the file's precision")
        targets[key] = {"title": title, "package": package, "file": kind, **run, "why": why,
                        "built_on_device": False}
    return {"chosen": chosen, "note": note, "fallback": [] if same else [portable],
            "fallback_note": ("none needed: the choice is already the portable default" if same else
                              "if the chosen runtime or precision is not available where the app runs"),
            "targets": targets}


def versions() -> dict[str, str]:
    """The versions that produced a bundle: edgecnn, onnx, ONNX Runtime (which wrote the ORT-format file), numpy,
    Python, and the platform."""
    import numpy
    import onnx

    from edgecnn import __version__

    out = {"edgecnn": __version__, "onnx": onnx.__version__, "numpy": numpy.__version__,
           "python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover - the ORT-format conversion needs it first
        pass
    return out


def manifest(name: str, files: Mapping[str, Mapping[str, Any]], source: Mapping[str, Any]) -> dict[str, Any]:
    """``manifest.json``: the SHA-256 and size of every other file, the versions, and what was verified where."""
    return {
        "format": FORMAT, "model": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": dict(source), "files": {k: dict(v) for k, v in sorted(files.items())}, "versions": versions(),
        "verified": {"python": "edgecnn bundle --verify DIR: every hash, and one run of the .onnx and .ort files "
                               "with the Python runtime (ONNX Runtime CPU)",
                     "devices": "not built or run on a device (C++, Android or iOS)"},
    }


def dumps(data: Any) -> bytes:
    """The JSON of a bundle file: indented, UTF-8, newline-terminated."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- READMEs


def _facts(pre: Mapping[str, Any]) -> dict[str, str]:
    h, w = pre["input_size"]
    inp, norm, out = pre["input"], pre["normalize"], pre["output"]
    shape = [1, *([pre["image"]["channels"], h, w] if inp["layout"] == "NCHW" else [h, w, pre["image"]["channels"]])]
    resize = (f"resize the shorter side to {pre['resize']['shorter_side']} px (bilinear, antialiased), center crop "
              f"{h}x{w}" if pre["resize"]["center_crop"] else f"resize the whole image to {h}x{w} (bilinear), no crop")
    if "task" in out:  # a detector or segmenter
        return {
            "shape": str(shape), "layout": inp["layout"], "dtype": inp["dtype"], "name": inp["name"],
            "resize": resize, "order": pre["image"]["channel_order"].upper(),
            "channels": str(pre["image"]["channels"]), "mean": ", ".join(f"{v:.6g}" for v in norm["mean"]),
            "std": ", ".join(f"{v:.6g}" for v in norm["std"]), "labels": out["labels_file"] or "none (class indices)",
            "out": out["outputs"][0]["name"], "task": out["task"], "post": out["post_processing"],
            "outputs": ", ".join(f"`{o['name']}` {o['shape']}" for o in out["outputs"]),
            "nms": json.dumps(out.get("nms")) if out.get("nms") else "", "boxes": out.get("boxes", "")}
    return {
        "shape": str(shape), "layout": inp["layout"], "dtype": inp["dtype"], "name": inp["name"], "resize": resize,
        "order": pre["image"]["channel_order"].upper(), "channels": str(pre["image"]["channels"]),
        "mean": ", ".join(f"{v:.6g}" for v in norm["mean"]), "std": ", ".join(f"{v:.6g}" for v in norm["std"]),
        "classes": str(out["classes"]), "background": "yes: drop output 0 before softmax" if out["background_class"]
        else "no", "labels": out["labels_file"] or "none (class indices)", "out": out["name"],
    }


def _preprocess_list(f: Mapping[str, str]) -> str:
    return "\n".join([
        f"1. Decode to 8-bit {'RGB' if f['channels'] == '3' else 'grayscale'}; {f['resize']}.",
        f"2. Per channel, in **{f['order']}** order: `(pixel / 255 - mean[c]) / std[c]` with mean = [{f['mean']}], "
        f"std = [{f['std']}].",
        f"3. Write a **{f['dtype']}** tensor `{f['name']}` of shape {f['shape']} (**{f['layout']}**"
        + (": plane by plane, all of channel 0, then channel 1..." if f["layout"] == "NCHW" else ": pixel by pixel, "
           "channels interleaved") + ").",
        (f"4. Output `{f['out']}`: {f['classes']} class scores (background class: {f['background']}); softmax, then "
         f"the names in `{f['labels']}`." if "task" not in f else _task_step(f)),
    ])


def _task_step(f: Mapping[str, str]) -> str:
    """Step 4 of a detector's or segmenter's README: its outputs and their post-processing."""
    text = f"4. Outputs ({f['task']}): {f['outputs']}. {f['post'][:1].upper() + f['post'][1:]}."
    if f["task"] == "detection":
        text += (f" Thresholds (`edgecnn.nms`): `{f['nms']}`. Boxes: {f['boxes']}. Class names (index 0 the "
                 f"background): `{f['labels']}`. edgecnn's `examples/cpp` and `examples/node` do all of this "
                 "(tasks.cpp, edgecnn.mjs) and match Python's boxes in the parity tests.")
    else:
        text += f" Class names: `{f['labels']}`."
    return text


def readme(name: str, pre: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """The bundle's ``README.md``: what each file is, the choice, the fallback, how to verify."""
    f = _facts(pre)
    ch = run["chosen"]
    fb = "; ".join(f"{x['runtime']} {x['precision']} ({x['why']})" for x in run["fallback"]) or run["fallback_note"]
    note = run["note"][:1].upper() + run["note"][1:]
    return f"""# {name}: an edgecnn bundle

> **{NOT_BUILT}**

| file | what |
| --- | --- |
| `{name}.onnx` | the model (ONNX), with its edgecnn metadata |
| `{name}.ort` | the same model in ONNX Runtime's ORT format (mobile and minimal builds) |
| `{name}.required_operators.config` | the operators a reduced ONNX Runtime build must include |
| `{PREPROCESSING}` | the preprocessing, input and output as plain data (every key of the metadata contract) |
| `{RUNTIME}` | the runtime and precision chosen, what to fall back to, per target |
| `{LABELS}` | class names, one per line (when the model has them) |
| `cpp/README.md`, `android/README.md`, `ios/README.md` | how each target loads and feeds the model |
| `{MANIFEST}` | the SHA-256 of every file and the versions that produced them |

**Runtime**: {ch['runtime']} at {ch['precision']} ({ch['source']}). {note}.
**Fallback**: {fb}.

## Input

{_preprocess_list(f)}

## Check it

```bash
edgecnn bundle --verify {name}
```

re-checks every SHA-256 against `{MANIFEST}` and runs `{name}.onnx` and `{name}.ort` once with the Python
runtime (ONNX Runtime, CPU).
"""


def target_readme(target: str, name: str, pre: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """``<target>/README.md`` for ``cpp``, ``android`` or ``ios``, from the same facts as ``README.md``."""
    f = _facts(pre)
    t = run["targets"][target]
    model_file = f"{name}.{t['file']}"
    half = f["dtype"] == "float16"
    head = f"""# {name} in {t['title']}

> **{NOT_BUILT}**

- Package: {t['package']}. Model file: `../{model_file}`{' (a reduced build: `../' + name +
  '.required_operators.config`)' if t['file'] == 'ort' else ''}.
- Run on: {t['runtime']} at {t['precision']} ({t['why']}).

## Preprocessing (from `../{PREPROCESSING}`)

{_preprocess_list(f)}
"""
    if target == "cpp":
        body = f"""## Code

`examples/cpp` in edgecnn's repository is this program, built and compared with Python by the parity tests:
it reads every key above from the file's metadata at load and refuses what it cannot honour.

```cpp
Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "{name}");
Ort::SessionOptions options;                      // CPU execution provider
Ort::Session session(env, "{model_file}", options);
std::vector<int64_t> shape{{{f['shape'][1:-1]}}};  // {f['layout']}
// x: {'uint16_t half bits (round to nearest even)' if half else 'float'} values, preprocessed as above
Ort::Value input = Ort::Value::CreateTensor(memory_info, x.data(), x.size() * sizeof(x[0]), shape.data(),
                                           shape.size(), {'ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16' if half else
                                                          'ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT'});
```
"""
    elif target == "android":
        body = f"""## Code (Kotlin, not compiled here)

```kotlin
val env = OrtEnvironment.getEnvironment()
val session = env.createSession(assets.open("{model_file}").readBytes(), OrtSession.SessionOptions())
val shape = longArrayOf({f['shape'][1:-1]})   // {f['layout']}
// pixels from the Bitmap, preprocessed as above into a {'ShortBuffer of float16 bits' if half else 'FloatBuffer'}
val input = OnnxTensor.createTensor(env, buffer, shape{', OnnxJavaType.FLOAT16' if half else ''})
val scores = session.run(mapOf("{f['name']}" to input)).use {{ (it[0].value as Array<*>)[0] }}
```
"""
    else:
        body = f"""## Code (Swift, not compiled here)

```swift
let env = try ORTEnv(loggingLevel: .warning)
let path = Bundle.main.path(forResource: "{name}", ofType: "{t['file']}")!
let session = try ORTSession(env: env, modelPath: path, sessionOptions: try ORTSessionOptions())
let shape: [NSNumber] = [{f['shape'][1:-1]}]   // {f['layout']}
// data: the {'float16 bits' if half else 'Float32 values'} preprocessed as above, as NSMutableData
let input = try ORTValue(tensorData: data, elementType: {'.float16' if half else '.float'}, shape: shape){
'  // float16: check that your onnxruntime-objc has it' if half else ''}
let outputs = try session.run(withInputs: ["{f['name']}": input], outputNames: ["{f['out']}"], runOptions: nil)
```
"""
    return head + "\n" + body
