// Detection and segmentation post-processing; see tasks.hpp.
#include "tasks.hpp"

#include <algorithm>
#include <numeric>
#include <regex>
#include <stdexcept>

namespace edgecnn {

namespace {

// The number after "key": in a flat JSON object; false when absent.
bool json_number(const std::string& json, const std::string& key, double* out) {
  const std::regex re("\"" + key + "\"\\s*:\\s*(-?[0-9.eE+-]+)");
  std::smatch m;
  if (!std::regex_search(json, m, re)) return false;
  *out = std::stod(m[1].str());
  return true;
}

std::string json_string(const std::string& json, const std::string& key) {
  const std::regex re("\"" + key + "\"\\s*:\\s*\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(json, m, re) ? m[1].str() : std::string();
}

// Candidates sorted by decreasing score, ties by index: a stable sort, as torchvision's CPU nms kernel does.
std::vector<size_t> by_score(const std::vector<float>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

std::vector<Detection> best(std::vector<Detection> dets, int k) {
  std::stable_sort(dets.begin(), dets.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
  if (static_cast<int>(dets.size()) > k) dets.resize(static_cast<size_t>(k));
  return dets;
}

}  // namespace

NmsParams nms_from_metadata(const std::map<std::string, std::string>& meta) {
  const auto it = meta.find(std::string("edgecnn.") + "nms");
  if (it == meta.end())
    throw std::runtime_error("a detection file needs edgecnn.nms metadata; export it with 'edgecnn export MODEL "
                             "--nms graph|host'");
  const std::string& j = it->second;
  NmsParams p;
  p.placement = json_string(j, "placement");
  if (p.placement != "graph" && p.placement != "host")
    throw std::runtime_error("edgecnn.nms placement '" + p.placement + "': expected graph or host");
  double v;
  if (json_number(j, "score_threshold", &v)) p.score_threshold = v;
  if (json_number(j, "iou_threshold", &v)) p.iou_threshold = v;
  if (json_number(j, "topk_candidates", &v)) p.topk_candidates = static_cast<int>(v);
  if (json_number(j, "detections_per_image", &v)) p.detections_per_image = static_cast<int>(v);
  return p;
}

std::map<std::string, std::string> output_roles(const std::map<std::string, std::string>& meta) {
  std::map<std::string, std::string> roles;
  const auto it = meta.find(std::string("edgecnn.") + "outputs");
  if (it == meta.end()) return roles;
  const std::regex item("\\{[^{}]*\\}");
  for (auto m = std::sregex_iterator(it->second.begin(), it->second.end(), item); m != std::sregex_iterator(); ++m) {
    const std::string obj = m->str();
    const std::string name = json_string(obj, "name"), role = json_string(obj, "role");
    if (!name.empty() && !role.empty()) roles[role] = name;
  }
  return roles;
}

std::vector<Detection> host_nms(const float* boxes, const float* scores, int64_t anchors, int64_t classes,
                                const NmsParams& p) {
  const float thr = static_cast<float>(p.iou_threshold), min_score = static_cast<float>(p.score_threshold);
  std::vector<Detection> kept;
  for (int64_t c = 1; c < classes; ++c) {  // class 0 is the background
    std::vector<float> s;
    std::vector<int64_t> idx;
    for (int64_t a = 0; a < anchors; ++a) {
      const float v = scores[a * classes + c];
      if (v > min_score) {
        s.push_back(v);
        idx.push_back(a);
      }
    }
    std::vector<size_t> order = by_score(s);
    if (static_cast<int>(order.size()) > p.topk_candidates) order.resize(static_cast<size_t>(p.topk_candidates));
    // greedy NMS in float32: a box is dropped when it overlaps a kept, better one with IoU > iou_threshold
    std::vector<const float*> cand;
    for (size_t i : order) cand.push_back(boxes + idx[i] * 4);
    std::vector<bool> removed(cand.size(), false);
    for (size_t i = 0; i < cand.size(); ++i) {
      if (removed[i]) continue;
      const float* a = cand[i];
      kept.push_back({{a[0], a[1], a[2], a[3]}, s[order[i]], c});
      const float area_a = (a[2] - a[0]) * (a[3] - a[1]);
      for (size_t j = i + 1; j < cand.size(); ++j) {
        if (removed[j]) continue;
        const float* b = cand[j];
        const float w = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.f);
        const float h = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.f);
        const float inter = w * h;
        const float uni = area_a + (b[2] - b[0]) * (b[3] - b[1]) - inter;
        if (inter > thr * uni) removed[j] = true;
      }
    }
  }
  return best(std::move(kept), p.detections_per_image);  // classes in order, then by score: ties keep that order
}

std::vector<Detection> graph_detections(const float* boxes, const float* scores, const int64_t* labels,
                                        const int64_t* batch_index, int64_t k, int64_t image, const NmsParams& p) {
  std::vector<Detection> dets;
  for (int64_t i = 0; i < k; ++i)
    if (batch_index[i] == image)
      dets.push_back({{boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]}, scores[i], labels[i]});
  return best(std::move(dets), p.detections_per_image);
}

void to_image(std::vector<Detection>& dets, int height, int width, int image_width, int image_height) {
  const float sx = static_cast<float>(static_cast<double>(image_width) / width);
  const float sy = static_cast<float>(static_cast<double>(image_height) / height);
  for (auto& d : dets) {
    d.box[0] *= sx;
    d.box[1] *= sy;
    d.box[2] *= sx;
    d.box[3] *= sy;
  }
}

std::vector<double> pixel_shares(const float* masks, int64_t classes, int64_t height, int64_t width) {
  const int64_t plane = height * width;
  std::vector<int64_t> counts(static_cast<size_t>(classes), 0);
  for (int64_t px = 0; px < plane; ++px) {
    int64_t arg = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (masks[c * plane + px] > masks[arg * plane + px]) arg = c;
    ++counts[static_cast<size_t>(arg)];
  }
  std::vector<double> shares(counts.size());
  for (size_t c = 0; c < counts.size(); ++c) shares[c] = static_cast<double>(counts[c]) / std::max<int64_t>(plane, 1);
  return shares;
}

}  // namespace edgecnn
