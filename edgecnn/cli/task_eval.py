"""``evaluate`` for detection and segmentation files: COCO mAP (``--annotations``), mean IoU (``--masks``) and
agreement with ``--reference``; the work is :mod:`edgecnn.profiler.task_accuracy`, this only parses and prints."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import prepared_model
from edgecnn.cli.output import echo_json
from edgecnn.errors import EdgecnnError


def evaluate_task(model: str, precision: str, images: str | None, annotations: str | None, masks: str | None,
                   provider: str, device: str | None, batch: int, limit: int | None, reference: str | None,
                   as_json: bool, preprocess: dict[str, Any]) -> None:
    """``evaluate`` for a detector or segmenter: COCO mAP, mean IoU and/or agreement with ``--reference``."""
    from edgecnn.profiler import task_accuracy as T

    if images is None:
        raise EdgecnnError("--annotations, --masks and a detector's --reference need the image folder: --images DIR.")
    if annotations is not None and masks is not None:
        raise EdgecnnError("give --annotations FILE (a detector) or --masks DIR (a segmenter), not both.")
    if annotations is None and masks is None and reference is None:
        raise EdgecnnError("nothing to measure on --images: give --annotations FILE (COCO, detection), --masks DIR "
                           "(label maps, segmentation) or --reference FILE (agreement with an fp32 file).")
    prepared = prepared_model(model, precision, provider, preprocess=preprocess)
    ref = prepared_model(reference, preprocess=preprocess, label="reference", said=prepared.notices) if reference \
        else None
    kw: dict[str, Any] = {"provider": provider, "batch_size": batch, "limit": limit, "precision": precision,
                          "device": device}
    rep = None
    if annotations is not None:
        rep = T.evaluate_detection(prepared.path, images, annotations, **kw)
    elif masks is not None:
        rep = T.evaluate_segmentation(prepared.path, images, masks, **kw)
    if rep is not None:
        rep.model = str(prepared.source)
    cmp = T.compare_task(ref.path, prepared.path, images, **kw) if ref is not None else None
    if cmp is not None:
        cmp.reference, cmp.candidate = str(ref.source), str(prepared.source)
    if as_json:
        echo_json({**(rep.as_dict() if rep else {}), **({"agreement": cmp.as_dict()} if cmp else {}),
                   "notices": list(prepared.notices) + (list(ref.notices) if ref else [])})
        return
    lines = (rep.lines() if rep else []) + (([""] if rep else []) + cmp.lines() if cmp else [])
    click.echo("\n".join(lines))
