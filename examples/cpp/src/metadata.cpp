// See metadata.hpp.
#include "metadata.hpp"

#include <cctype>
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

std::vector<std::string> parse_string_list(const std::string& json, const std::string& key) {
  const auto bad = [&]() { return std::runtime_error("metadata " + key + " is not a JSON list of strings"); };
  std::vector<std::string> out;
  size_t i = 0;
  const auto skip = [&]() {
    while (i < json.size() && std::isspace(static_cast<unsigned char>(json[i]))) ++i;
  };
  const auto utf8 = [](std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      s.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  };
  const auto hex4 = [&]() -> unsigned {
    if (i + 4 > json.size()) throw bad();
    const unsigned v = static_cast<unsigned>(std::stoul(json.substr(i, 4), nullptr, 16));
    i += 4;
    return v;
  };
  skip();
  if (i >= json.size() || json[i++] != '[') throw bad();
  skip();
  if (i < json.size() && json[i] == ']') return out;
  for (;;) {
    skip();
    if (i >= json.size() || json[i++] != '"') throw bad();
    std::string s;
    for (;;) {
      if (i >= json.size()) throw bad();
      const char c = json[i++];
      if (c == '"') break;
      if (c != '\\') {
        s.push_back(c);
        continue;
      }
      if (i >= json.size()) throw bad();
      const char e = json[i++];
      switch (e) {
        case 'n': s.push_back('\n'); break;
        case 't': s.push_back('\t'); break;
        case 'r': s.push_back('\r'); break;
        case 'b': s.push_back('\b'); break;
        case 'f': s.push_back('\f'); break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < json.size() && json[i] == '\\' && json[i + 1] == 'u') {
            i += 2;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4() - 0xdc00);
          }
          utf8(s, cp);
          break;
        }
        default: s.push_back(e);  // \" \\ \/
      }
    }
    out.push_back(s);
    skip();
    if (i < json.size() && json[i] == ']') return out;
    if (i >= json.size() || json[i++] != ',') throw bad();
  }
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// NCHW or NHWC when exactly one of axes 1 and 3 holds 1 or 3 channels (edgecnn.io_spec.guess_layout).
std::string guess_layout(const std::vector<int64_t>& shape) {
  if (shape.size() != 4) return "";
  const auto is_channels = [](int64_t d) { return d == 1 || d == 3; };
  if (is_channels(shape[1]) && !is_channels(shape[3])) return "NCHW";
  if (is_channels(shape[3]) && !is_channels(shape[1])) return "NHWC";
  return "";
}

}  // namespace

PreprocessConfig config_from_metadata(const std::map<std::string, std::string>& meta,
                                      const std::vector<int64_t>& shape, bool input_fp16) {
  PreprocessConfig cfg;
  const auto get = [&](const char* k) -> const std::string* {
    auto it = meta.find(std::string("edgecnn.") + k);
    return it == meta.end() ? nullptr : &it->second;
  };
  // what this example cannot honour stops it here, at load
  if (const auto* v = get("task"); v && !v->empty()) {
    if (*v != "classification" && *v != "detection" && *v != "segmentation")
      throw std::runtime_error("unknown edgecnn.task '" + *v + "' (classification, detection or segmentation)");
    cfg.task = *v;
  }
  if (const auto* v = get("letterbox"); v && !v->empty() && lower(*v) != "false" && *v != "null" && *v != "0")
    throw std::runtime_error("the file asks for letterbox preprocessing (edgecnn.letterbox = " + *v +
                             "), which this example does not do");
  bool stretch = false;  // edgecnn.resize stretch: the whole image resized to the input size (no crop by default)
  if (const auto* v = get("resize"); v && !v->empty()) {
    if (lower(*v) != "crop" && lower(*v) != "stretch")
      throw std::runtime_error("the file asks for '" + *v + "' resizing (edgecnn.resize), which this example does "
                               "not do (crop or stretch)");
    stretch = lower(*v) == "stretch";
  }
  if (const auto* v = get("head"); v && !v->empty() && *v != "null")
    throw std::runtime_error("the file's outputs are a foreign detection head (edgecnn.head = " + v->substr(0, 60) +
                             "), which this example does not decode: run it with edgecnn's Python runtime");
  if (const auto* v = get("box_format"); v && !v->empty() && lower(*v) != "xyxy")
    throw std::runtime_error("edgecnn.box_format '" + *v + "': this example reads xyxy boxes");
  if (stretch) cfg.crop_fraction = 0;  // edgecnn.crop_fraction, when given, still decides (below)
  // layout: metadata, else from the shape, else NCHW
  std::string layout = guess_layout(shape);
  if (const auto* v = get("input_layout")) layout = *v;
  for (auto& c : layout) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (layout.empty()) layout = "NCHW";
  if (layout != "NCHW" && layout != "NHWC")
    throw std::runtime_error("unsupported edgecnn.input_layout '" + layout + "' (NCHW or NHWC)");
  cfg.nhwc = layout == "NHWC";
  const size_t c_axis = cfg.nhwc ? 3 : 1, h_axis = cfg.nhwc ? 1 : 2, w_axis = cfg.nhwc ? 2 : 3;
  // channels: metadata, else the graph's C dimension, else 3
  if (const auto* v = get("channels")) {
    cfg.channels = std::atoi(v->c_str());
  } else if (shape.size() == 4 && shape[c_axis] > 0) {
    cfg.channels = static_cast<int>(shape[c_axis]);
  }
  if (cfg.channels != 1 && cfg.channels != 3)
    throw std::runtime_error("unsupported channel count " + std::to_string(cfg.channels) + " (expected 1 or 3)");
  // input size: metadata, else the graph's H and W, else 224x224
  if (const auto* v = get("input_size")) {
    auto hw = v->find('[') == std::string::npos ? parse_number_list("[" + *v + "]", "edgecnn.input_size")
                                                 : parse_number_list(*v, "edgecnn.input_size");
    if (hw.size() == 1) hw.push_back(hw[0]);
    if (hw.size() != 2) throw std::runtime_error("metadata edgecnn.input_size must be [height, width]: " + *v);
    cfg.height = static_cast<int>(hw[0]);
    cfg.width = static_cast<int>(hw[1]);
  } else if (shape.size() == 4 && shape[h_axis] > 0 && shape[w_axis] > 0) {
    cfg.height = static_cast<int>(shape[h_axis]);
    cfg.width = static_cast<int>(shape[w_axis]);
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
  // channel order: mean/std above are already in it
  if (const auto* v = get("channel_order")) {
    const std::string order = lower(*v);
    if (order != "rgb" && order != "bgr")
      throw std::runtime_error("unsupported edgecnn.channel_order '" + *v + "' (rgb or bgr)");
    cfg.bgr = order == "bgr";
  }
  // crop: a fraction of the resized shorter side, or null (resize to the input size, no crop)
  if (const auto* v = get("crop_fraction")) {
    if (*v == "null") {
      cfg.crop_fraction = 0;
    } else {
      const auto f = parse_number_list("[" + *v + "]", "edgecnn.crop_fraction");
      if (f.size() != 1 || !(f[0] > 0 && f[0] <= 1))
        throw std::runtime_error("metadata edgecnn.crop_fraction must be null or in (0, 1], got " + *v);
      cfg.crop_fraction = f[0];
    }
  }
  // I/O dtype: the graph's input decides; the metadata must agree with it
  cfg.fp16 = input_fp16;
  if (const auto* v = get("io_dtype")) {
    if (*v != "float32" && *v != "float16")
      throw std::runtime_error("unsupported edgecnn.io_dtype '" + *v + "' (float32 or float16)");
    if ((*v == "float16") != input_fp16)
      throw std::runtime_error("metadata edgecnn.io_dtype says " + *v + " but the model input is " +
                               (input_fp16 ? "float16" : "float32"));
  }
  if (const auto* v = get("background_class")) cfg.background_class = std::atoi(v->c_str());
  if (const auto* v = get("labels")) cfg.labels = parse_string_list(*v, "edgecnn.labels");
  if (const auto* v = get("class_names")) cfg.class_names = *v;
  return cfg;
}

}  // namespace edgecnn
