"""Detection and segmentation benchmark (not a test): the zoo's three torchvision task models, exported by edgecnn,
against torchvision's own figures and timed at batch 1 on ONNX Runtime CPU and OpenVINO.

Per model: parameters and GMACs (the file's, Conv/Gemm/MatMul) next to torchvision's weights metadata (``_ops``,
``num_params``: read from the installed package, nothing downloaded); per runtime the median latency of the graph
and, for SSDlite, of the graph plus the host's decoding (with ``--nms graph`` the per-image cut after the graph's
NMS; with ``--nms host`` the whole NMS in numpy). Each configuration runs in this process one after the other
(``edgecnn.profiler.measure.bench``), so compare ratios from one run only. An annotated picture made by
``edgecnn predict --save`` on a synthetic image goes beside the table (seeded random weights: the boxes and
the mask show the pipeline, not a trained model).

    python tools/bench_tasks.py --json runs/tasks.json                 # writes docs/results/tasks.md (+ .json, .png)
    python tools/bench_tasks.py --models lraspp_mobilenet_v3_large --iters 5 --results-dir /tmp/results
    python tools/bench_tasks.py --render runs/tasks.json               # (re)write the results file
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402

MODELS = "ssdlite320_mobilenet_v3_large,deeplabv3_mobilenet_v3_large,lraspp_mobilenet_v3_large"
TV = {"ssdlite320_mobilenet_v3_large": ("SSDLite320_MobileNet_V3_Large_Weights", "detection.ssdlite"),
      "deeplabv3_mobilenet_v3_large": ("DeepLabV3_MobileNet_V3_Large_Weights", "segmentation.deeplabv3"),
      "lraspp_mobilenet_v3_large": ("LRASPP_MobileNet_V3_Large_Weights", "segmentation.lraspp")}


def _providers() -> list[str]:
    from edgecnn.runtime.backends import registry

    return [p for p in ("cpu", "openvino") if registry.available().get(p, "missing") is None]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Export each model (SSDlite with NMS in the graph and on the host), time it, draw one picture."""
    import numpy as np
    from PIL import Image

    from edgecnn.exporters import export
    from edgecnn.exporters.tasks import synthetic_images
    from edgecnn.models._torchvision import weights_meta
    from edgecnn.profiler.measure import bench

    rows, work = [], Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    for name in args.models.split(","):
        meta = weights_meta(*TV[name])
        for nms in (("graph", "host") if name.startswith("ssd") else (None,)):
            r = export(name, work / f"{name}-{nms or 'seg'}.onnx", progress=False, nms=nms)
            row: dict[str, Any] = {"model": name, "nms": nms, "params": r.num_params, "macs": r.macs,
                                   "tv_params": meta["num_params"], "tv_gmacs": meta["_ops"], "passed": r.passed,
                                   "runs": {}}
            for provider in _providers():
                b = bench(r.path, [1], provider=provider, precision="fp32", iters=args.iters, warmup=2,
                          progress=False, measure_peak_now=False, compare_fp32=False).batches[0]
                row["runs"][provider] = {"p50": b.latency_ms["p50"], "cv": b.cv,
                                         "e2e_p50": (b.end_to_end or {}).get("latency_ms", {}).get("p50")}
            rows.append(row)
            if nms == "graph" or name.startswith("lraspp"):
                img = work / "input.png"
                Image.fromarray((synthetic_images(1, (240, 400), offset=1)[0].transpose(1, 2, 0) * 255)
                                .astype(np.uint8)).save(img)
                from edgecnn.cli import main

                out = work / f"{name}.png"
                try:
                    main(["predict", r.path, str(img), "--save", str(out), "--min-score", "0", "--json", "--provider",
                          "cpu", "--force"])
                except SystemExit:
                    pass
                row["picture"] = str(out)
    return {"rows": rows, "iters": args.iters, "machine": results.machine(args.threads),
            "command": results.command(__file__)}


def render(data: dict[str, Any], args: argparse.Namespace) -> str:
    """The results file: MACs/params against torchvision, batch-1 latency per runtime."""
    providers = sorted({p for r in data["rows"] for p in r["runs"]})
    headers = ["model", "NMS", "params", "torchvision params", "GMACs", "torchvision GMACs", "MACs vs torchvision"]
    for p in providers:
        headers += [f"{p} graph p50 ms", f"{p} end-to-end p50 ms"]
    body = []
    pictures = []
    for r in data["rows"]:
        gmacs = r["macs"] / 1e9
        line = [r["model"], r["nms"] or "-", f"{r['params']:,}", f"{r['tv_params']:,}", f"{gmacs:.3f}",
                f"{r['tv_gmacs']:.3f}", f"{100 * (gmacs / r['tv_gmacs'] - 1):+.2f}%"]
        for p in providers:
            run = r["runs"].get(p)
            line += [f"{run['p50']:.2f}" if run else None,
                     f"{run['e2e_p50']:.2f}" if run and run.get("e2e_p50") is not None else "-"]
        body.append(line)
        if r.get("picture") and Path(r["picture"]).is_file():
            pictures.append(results.picture(args, r["picture"], f"tasks-{r['model'].split('_')[0]}",
                                            f"edgecnn predict --save on {r['model']}"))
    notes = ("Batch 1, fp32, seeded random weights (latency does not depend on the weights; SSDlite's NMS work "
             "does: random scores keep many boxes). End-to-end adds the host's decoding to the graph. "
             f"{data['iters']} timed runs each.\n\n" + "\n\n".join(pictures))
    return results.write(args, "tasks", "Detection and segmentation: MACs, parameters and batch-1 latency",
                         results.table(body, headers), data, notes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=MODELS, help="comma-separated zoo names [default: the three]")
    ap.add_argument("--iters", type=int, default=20, help="timed runs per configuration")
    ap.add_argument("--threads", type=int, default=None)
    results.add_saved_data(ap)
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    data = results.measured(args, measure)
    print(render(data, args))


if __name__ == "__main__":
    main()
