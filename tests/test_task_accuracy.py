"""COCO mAP, mean IoU and agreement for detection and segmentation files (edgecnn/profiler/task_accuracy.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.profiler import task_accuracy as T

pytest.importorskip("pycocotools")


def ap101(tp: list[bool], n_gt: int) -> float:
    """AP by COCO's definition, written out: detections by decreasing score, precision made monotone from the
    right, read at recall 0, 0.01, ..., 1 (the first detection reaching each recall; 0 when none does)."""
    tps = np.cumsum(tp)
    fps = np.cumsum([not t for t in tp])
    recall = tps / n_gt
    precision = tps / (tps + fps)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    total = 0.0
    for k in range(101):
        r = k / 100
        hit = [i for i in range(len(recall)) if recall[i] >= r - 1e-12]
        total += precision[hit[0]] if hit else 0.0
    return total / 101


IOUS = [0.5 + 0.05 * i for i in range(10)]


def three_images() -> tuple[dict, list[dict]]:
    """Category 1: a GT in each image; detections: exact (0.9), IoU 0.72 (0.8), a miss plus an FP elsewhere (0.7).
    Category 2: one GT in image 3; an FP in image 1 (0.95), then IoU 0.62 on the GT (0.5)."""
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in (1, 2, 3)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": [20, 20, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 4, "image_id": 3, "category_id": 2, "bbox": [50, 50, 20, 20], "area": 400, "iscrowd": 0},
    ]
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]}
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},      # IoU 1
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 7.2], "score": 0.8},     # IoU 0.72
        {"image_id": 3, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.7},    # IoU 0
        {"image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 20], "score": 0.95},   # no GT of 2 in image 1
        {"image_id": 3, "category_id": 2, "bbox": [50, 50, 20, 12.4], "score": 0.5},  # IoU 0.62
    ]
    return gt, dets


def test_coco_map_equals_a_hand_computed_ap_on_three_images() -> None:
    gt, dets = three_images()
    per_t = []
    for t in IOUS:
        cat1 = ap101([True, 0.72 >= t, False], 3)
        cat2 = ap101([False, 0.62 >= t], 1)
        per_t.append((cat1, cat2))
    # the figures written out: category 1 reaches recall 2/3 (67 of 101 recall points at precision 1) up to IoU 0.7,
    # 1/3 (34 points) above; category 2 is 0.5 at every recall up to IoU 0.6, then 0
    assert per_t[0] == (pytest.approx(67 / 101, abs=1e-12), pytest.approx(0.5, abs=1e-12))
    assert per_t[5] == (pytest.approx(34 / 101, abs=1e-12), pytest.approx(0.0, abs=1e-12))
    expected_map = float(np.mean(per_t))
    expected_map50 = float(np.mean(per_t[0]))
    got = T.coco_map(gt, dets)
    assert abs(got.map - expected_map) < 1e-6 and abs(got.map50 - expected_map50) < 1e-6
    assert abs(got.map75 - np.mean(per_t[5])) < 1e-6
    assert abs(got.per_category["circle"] - np.mean([c for c, _ in per_t])) < 1e-6
    assert abs(got.per_category["square"] - 0.15) < 1e-6 and got.detections == 5


def test_coco_map_of_perfect_and_of_no_detections(tmp_path) -> None:
    gt, _ = three_images()
    perfect = [{**{k: a[k] for k in ("image_id", "category_id", "bbox")}, "score": 1.0} for a in gt["annotations"]]
    assert T.coco_map(gt, perfect).map == pytest.approx(1.0, abs=1e-9)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(gt))
    empty = T.coco_map(path, [])
    assert empty.map == 0.0 and empty.map50 == 0.0 and empty.detections == 0


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    (json.dumps({"images": []}), "is not a COCO-format file"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}],
                 "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}),
     "not valid"),
    (json.dumps({"images": [{"id": 1}], "categories": [], "annotations": []}), "missing key 'file_name'"),
])
def test_bad_annotation_files_are_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "instances.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EdgecnnError, match=message) as e:
        T.load_annotations(path)
    assert "\n" not in str(e.value)


def test_category_mapping_by_name_else_identity() -> None:
    cats = [{"id": 3, "name": "Square"}, {"id": 7, "name": "circle"}]
    mapping, how = T.category_mapping(["__background__", "circle", "square"], cats)
    assert mapping == {2: 3, 1: 7} and how.startswith("by name")
    mapping, how = T.category_mapping(["__background__", "circle"], cats)  # 'square' unnamed: identity
    assert mapping == {3: 3, 7: 7} and how.startswith("identity")
    assert T.category_mapping(None, cats)[0] == {3: 3, 7: 7}


def test_mean_iou_by_hand() -> None:
    truth = np.array([[0, 0, 1, 1],
                      [0, 0, 1, 1],
                      [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 0, 1, 0],
                     [2, 0, 1, 2]])
    cm = T.confusion(pred, truth, 4)
    assert cm.sum() == 10  # the two ignored pixels are not counted
    miou, per = T.iou_from_confusion(cm)
    # class 0: TP 3, FP 2 (a 1 and a 2 predicted 0), FN 1 -> 3 / 6
    # class 1: TP 3, FP 1, FN 1 -> 3 / 5; class 2: TP 1, FN 1 -> 1 / 2; class 3: absent from both -> None
    assert per == [pytest.approx(3 / 6), pytest.approx(3 / 5), pytest.approx(1 / 2), None]
    assert miou == pytest.approx((3 / 6 + 3 / 5 + 1 / 2) / 3, abs=1e-12)
    with pytest.raises(EdgecnnError, match="holds class 4"):
        T.confusion(pred, np.full_like(truth, 4), 4)
