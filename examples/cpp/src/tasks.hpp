// Detection and segmentation outputs, post-processed as edgecnn's Python runtime does
// (edgecnn/runtime/vision/detection.py and segmentation.py).
//
// Detection files say where NMS runs in edgecnn.nms:
//   placement "graph": the graph ends in ONNX NonMaxSuppression and outputs the kept detections of the batch,
//     boxes (K, 4), scores (K), labels (K), batch_index (K); the host sorts one image's by score (stable) and keeps
//     the best detections_per_image.
//   placement "host": the graph outputs every anchor's boxes (N, A, 4) and class scores (N, A, C), class 0 the
//     background; host_nms() is torchvision's SSD.postprocess_detections: per class, scores > score_threshold, the
//     best topk_candidates, greedy NMS at iou_threshold; then the best detections_per_image of all classes.
// Boxes are (x1, y1, x2, y2) in input pixels; to_image() maps them to the image's own pixels (stretch resize).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace edgecnn {

struct NmsParams {
  std::string placement = "graph";
  double score_threshold = 0.001;
  double iou_threshold = 0.55;
  int topk_candidates = 300;
  int detections_per_image = 300;
};

struct Detection {
  float box[4];
  float score;
  int64_t label;
};

// edgecnn.nms (a flat JSON object) -> parameters; throws std::runtime_error when absent or malformed.
NmsParams nms_from_metadata(const std::map<std::string, std::string>& meta);

// edgecnn.outputs (a JSON list of {"name", "role", "batch"}) -> role -> output name; roles missing from it map to
// the output of the same name.
std::map<std::string, std::string> output_roles(const std::map<std::string, std::string>& meta);

// One image: every anchor's boxes (A x 4) and scores (A x C, class 0 the background) -> detections, best first.
std::vector<Detection> host_nms(const float* boxes, const float* scores, int64_t anchors, int64_t classes,
                                const NmsParams& p);

// Graph NMS: the kept detections of the batch -> image 0's, best first (stable on ties), at most
// detections_per_image.
std::vector<Detection> graph_detections(const float* boxes, const float* scores, const int64_t* labels,
                                        const int64_t* batch_index, int64_t k, int64_t image, const NmsParams& p);

// Boxes from input pixels (height x width) to an image of image_width x image_height pixels.
void to_image(std::vector<Detection>& dets, int height, int width, int image_width, int image_height);

// Per-pixel class scores of one image (C x H x W) -> the share of pixels whose argmax (first on ties) is each class.
std::vector<double> pixel_shares(const float* masks, int64_t classes, int64_t height, int64_t width);

}  // namespace edgecnn
