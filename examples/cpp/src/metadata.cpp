// See metadata.hpp.
#include "metadata.hpp"

#include <cstdlib>
#include <stdexcept>

namespace edgecnn {

std::map<std::string, std::string> read_metadata(Ort::Session& session) {
  Ort::AllocatorWithDefaultOptions alloc;
  Ort::ModelMetadata md = session.GetModelMetadata();
  std::map<std::string, std::string> out;
  for (const auto& key : md.GetCustomMetadataMapKeysAllocated(alloc)) {
    Ort::AllocatedStringPtr value = md.LookupCustomMetadataMapAllocated(key.get(), alloc);
    if (value) out[key.get()] = value.get();
  }
  return out;
}

std::vector<double> parse_number_list(const std::string& json, const std::string& key) {
  // Enough JSON for what edgecnn writes: '[' number (',' number)* ']' with optional spaces.
  const auto bad = [&]() { return std::runtime_error("metadata " + key + " is not a JSON list of numbers: " + json); };
  std::vector<double> out;
  const char* p = json.c_str();
  while (*p == ' ') ++p;
  if (*p++ != '[') throw bad();
  for (;;) {
    while (*p == ' ') ++p;
    if (*p == ']' && out.empty()) break;
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) throw bad();
    out.push_back(v);
    p = end;
    while (*p == ' ') ++p;
    if (*p == ']') break;
    if (*p++ != ',') throw bad();
  }
  return out;
}

PreprocessConfig config_from_metadata(const std::map<std::string, std::string>& meta,
                                      const std::vector<int64_t>& shape) {
  PreprocessConfig cfg;
  const auto get = [&](const char* k) -> const std::string* {
    auto it = meta.find(std::string("edgecnn.") + k);
    return it == meta.end() ? nullptr : &it->second;
  };
  // channels: metadata, else the graph's C dimension, else 3
  if (const auto* v = get("channels")) {
    cfg.channels = std::atoi(v->c_str());
  } else if (shape.size() == 4 && shape[1] > 0) {
    cfg.channels = static_cast<int>(shape[1]);
  }
  if (cfg.channels != 1 && cfg.channels != 3)
    throw std::runtime_error("unsupported channel count " + std::to_string(cfg.channels) + " (expected 1 or 3)");
  // input size: metadata, else the graph's H and W, else 224x224
  if (const auto* v = get("input_size")) {
    const auto hw = parse_number_list(*v, "edgecnn.input_size");
    if (hw.size() != 2) throw std::runtime_error("metadata edgecnn.input_size must be [height, width]: " + *v);
    cfg.height = static_cast<int>(hw[0]);
    cfg.width = static_cast<int>(hw[1]);
  } else if (shape.size() == 4 && shape[2] > 0 && shape[3] > 0) {
    cfg.height = static_cast<int>(shape[2]);
    cfg.width = static_cast<int>(shape[3]);
  }
  // mean/std: metadata, else ImageNet's (averaged over RGB for grayscale), as the Python runtime does
  if (cfg.channels == 1) {
    cfg.mean = {static_cast<float>((0.485 + 0.456 + 0.406) / 3)};
    cfg.std = {static_cast<float>((0.229 + 0.224 + 0.225) / 3)};
  }
  for (auto [key, target] : {std::pair{"mean", &cfg.mean}, std::pair{"std", &cfg.std}}) {
    const auto* v = get(key);
    if (!v) continue;
    const auto values = parse_number_list(*v, std::string("edgecnn.") + key);
    if (static_cast<int>(values.size()) != cfg.channels)
      throw std::runtime_error(std::string("metadata edgecnn.") + key + " has " + std::to_string(values.size()) +
                               " values for a " + std::to_string(cfg.channels) + "-channel model");
    target->assign(values.begin(), values.end());  // double -> float32, as numpy does
  }
  return cfg;
}

}  // namespace edgecnn
