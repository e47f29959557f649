"""Write the shapes task's data (and, with --models, its trained fp32 ONNX files) to a folder.

    python tools/shapes.py --out runs/shapes-data                   # test/ (COCO) and calib/
    python tools/shapes.py --out runs/shapes-data --train 3000      # also train/ (COCO)
    python tools/shapes.py --out runs/shapes-data --models          # also shapes_ssd.onnx, shapes_lraspp.onnx

``test/`` holds the held-out scenes (seeds from 1,000,000) as ``images/``, ``instances.json`` (COCO format) and
``masks/`` (label maps); ``calib/`` the first training scenes without labels, for int8 calibration; ``train/`` the
training scenes in the same layout as ``test/``. The scenes and models are those of :mod:`edgecnn.tasks.shapes`
(the models are trained once and cached; ``--models`` needs torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgecnn.tasks import shapes as S


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/shapes-data", help="output folder")
    p.add_argument("--test", type=int, default=S.TEST_SCENES, help="held-out scenes to write")
    p.add_argument("--calib", type=int, default=S.CALIB_SCENES, help="calibration scenes to write")
    p.add_argument("--train", type=int, default=0, help="training scenes to write as a COCO split (0: none)")
    p.add_argument("--models", action="store_true", help="also export the trained models (NMS in the graph)")
    a = p.parse_args(argv)
    out = Path(a.out)
    test = S.write_split(out / "test", a.test, S.TEST_SEED)
    print(f"wrote {a.test} test scenes: {test.images}, {test.annotations}, {test.masks}")
    S.write_images(out / "calib", a.calib, S.TRAIN_SEED)
    print(f"wrote {a.calib} calibration scenes: {out / 'calib'}")
    if a.train:
        S.write_split(out / "train", a.train, S.TRAIN_SEED)
        print(f"wrote {a.train} training scenes: {out / 'train'}")
    if a.models:
        task = S.shapes_task(log=print)
        for kind, weights in (("detector", task.detector), ("segmenter", task.segmenter)):
            path = S.export_onnx(kind, weights, out / f"{S.MODELS[kind]}.onnx")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
