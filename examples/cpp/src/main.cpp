// edgecnn_classify: run an edgecnn .onnx file with the ONNX Runtime C++ API and print the top-k classes, or, for
// a detection file, the boxes (NMS in the graph or here, tasks.hpp) and, for a segmentation file, each class's share
// of the pixels.
//
//   edgecnn_classify MODEL.onnx IMAGE.ppm [--top 5] [--json] [--provider cpu|cuda] [--threads N]
//                    [--labels FILE] [--dump-input FILE] [--min-score 0.25]
//   edgecnn_classify MODEL.onnx INPUT.raw ...      # a preprocessed tensor in the model's layout and input dtype
//                                                  # (.raw/.f32/.bin or --raw)
//
// Preprocessing (size, channels, mean/std, channel order, crop, layout, input dtype) comes from the file's
// edgecnn.* metadata and matches the Python runtime (edgecnn/runtime/images.py); a key it cannot honour (another
// task, letterbox) stops it at load. Errors print one line on stderr and exit with status 1 (2 for usage).
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "metadata.hpp"
#include "preprocess.hpp"
#include "tasks.hpp"

namespace {

struct Args {
  std::string model, input, provider = "cpu", labels, dump_input;
  int top = 5, threads = 0;
  double min_score = 0.25;  // detection: boxes below are not printed (as edgecnn predict --min-score)
  bool json = false, raw = false;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kUsage =
    "usage: edgecnn_classify MODEL.onnx IMAGE.ppm|INPUT.raw [--top K] [--json] [--provider cpu|cuda]\n"
    "                        [--threads N] [--labels FILE] [--raw] [--dump-input FILE] [--min-score S]\n";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int to_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 0) throw UsageError(flag + " expects a non-negative integer, got '" + v + "'");
  return static_cast<int>(n);
}

Args parse_args(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--raw") {
      a.raw = true;
    } else if (arg == "--top" || arg == "-k") {
      a.top = std::max(1, to_int(arg, value()));
    } else if (arg == "--threads") {
      a.threads = to_int(arg, value());
    } else if (arg == "--provider") {
      a.provider = value();
      if (a.provider != "cpu" && a.provider != "cuda")
        throw UsageError("--provider must be cpu or cuda, got '" + a.provider + "'");
    } else if (arg == "--min-score") {
      const std::string v = value();
      char* end = nullptr;
      a.min_score = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0') throw UsageError("--min-score expects a number, got '" + v + "'");
    } else if (arg == "--labels") {
      a.labels = value();
    } else if (arg == "--dump-input") {
      a.dump_input = value();
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) throw UsageError("expected MODEL.onnx and one IMAGE or INPUT file");
  a.model = positional[0];
  a.input = positional[1];
  a.raw = a.raw || ends_with(a.input, ".raw") || ends_with(a.input, ".f32") || ends_with(a.input, ".bin");
  return a;
}

// Session options for the requested provider; CUDA only when this ONNX Runtime library was built with it.
Ort::SessionOptions session_options(const Args& a) {
  Ort::SessionOptions so;
  if (a.threads > 0) so.SetIntraOpNumThreads(a.threads);
  so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  if (a.provider == "cuda") {
    const auto available = Ort::GetAvailableProviders();
    if (std::find(available.begin(), available.end(), "CUDAExecutionProvider") == available.end())
      throw std::runtime_error(
          "provider cuda is not available in this ONNX Runtime library; use --provider cpu, or build against a "
          "GPU release (ORT_ROOT=.../onnxruntime-linux-x64-gpu-<version>)");
    OrtCUDAProviderOptions cuda{};
    so.AppendExecutionProvider_CUDA(cuda);
  }
  return so;
}

std::vector<std::string> read_labels(const std::string& path) {
  std::vector<std::string> names;
  if (path.empty()) return names;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("labels file not found: " + path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

// Softmax in double (unless the scores already are probabilities), as edgecnn.runtime.postprocess does.
std::vector<float> probabilities(const std::vector<float>& s) {
  const double sum = std::accumulate(s.begin(), s.end(), 0.0);
  const bool already = std::all_of(s.begin(), s.end(), [](float v) { return v >= 0.f && v <= 1.f; }) &&
                       std::fabs(sum - 1.0) <= 1e-3 + 1e-5;
  if (already) return s;
  const double mx = *std::max_element(s.begin(), s.end());
  std::vector<double> e(s.size());
  double total = 0;
  for (size_t i = 0; i < s.size(); ++i) total += e[i] = std::exp(static_cast<double>(s[i]) - mx);
  std::vector<float> p(s.size());
  for (size_t i = 0; i < s.size(); ++i) p[i] = static_cast<float>(e[i] / total);
  return p;
}

// A classifier's scores: TensorFlow's background class (output 0) dropped when the file says so
// (edgecnn.background_class), or for 1001 outputs when it does not (edgecnn.runtime.postprocess.class_scores).
std::vector<float> class_scores(const std::vector<float>& s, const edgecnn::PreprocessConfig& cfg) {
  const bool drop = s.size() > 1 && (cfg.background_class >= 0 ? cfg.background_class == 1 : s.size() == 1001);
  if (!drop) return s;
  const double sum_all = std::accumulate(s.begin(), s.end(), 0.0);
  const bool prob = std::all_of(s.begin(), s.end(), [](float v) { return v >= 0.f && v <= 1.f; }) &&
                    std::fabs(sum_all - 1.0) <= 1e-3 + 1e-5;
  std::vector<float> rest(s.begin() + 1, s.end());
  const double total = std::accumulate(rest.begin(), rest.end(), 0.0);
  if (prob && total > 0)
    for (auto& v : rest) v = static_cast<float>(v / total);
  return rest;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// float32 data of an output (float16 converted), or int64 labels widened
std::vector<float> floats(const Ort::Value& v) {
  const auto info = v.GetTensorTypeAndShapeInfo();
  const size_t n = info.GetElementCount();
  std::vector<float> out(n);
  if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    const uint16_t* h = v.GetTensorData<uint16_t>();
    for (size_t i = 0; i < n; ++i) out[i] = edgecnn::from_half(h[i]);
  } else if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    const float* d = v.GetTensorData<float>();
    out.assign(d, d + n);
  } else {
    throw std::runtime_error("expected a float32 or float16 output");
  }
  return out;
}

std::vector<int64_t> ints(const Ort::Value& v) {
  const auto info = v.GetTensorTypeAndShapeInfo();
  const size_t n = info.GetElementCount();
  if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
    const int64_t* d = v.GetTensorData<int64_t>();
    return {d, d + n};
  }
  if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) {
    const int32_t* d = v.GetTensorData<int32_t>();
    return {d, d + n};
  }
  throw std::runtime_error("expected an int64 or int32 output (labels, batch_index)");
}

// A detection or segmentation file: run every output, post-process, print boxes or class shares.
int run_task(const Args& a, Ort::Session& session, Ort::Value& input, const std::string& input_name,
             const std::map<std::string, std::string>& meta, const edgecnn::PreprocessConfig& cfg, int image_width,
             int image_height) {
  Ort::AllocatorWithDefaultOptions alloc;
  std::vector<std::string> names;
  for (size_t i = 0; i < session.GetOutputCount(); ++i) names.push_back(session.GetOutputNameAllocated(i, alloc).get());
  std::vector<const char*> out_names;
  for (const auto& n : names) out_names.push_back(n.c_str());
  const char* in_names[] = {input_name.c_str()};
  const auto t0 = std::chrono::steady_clock::now();
  auto outputs = session.Run(Ort::RunOptions{nullptr}, in_names, &input, 1, out_names.data(), out_names.size());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto roles = edgecnn::output_roles(meta);
  const auto output = [&](const std::string& role) -> Ort::Value& {
    const std::string name = roles.count(role) ? roles[role] : role;
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return outputs[i];
    if (role == "masks") return outputs[0];
    throw std::runtime_error("the detection file has no output '" + name + "' (edgecnn.outputs)");
  };
  const auto names_of = a.labels.empty() ? cfg.labels : read_labels(a.labels);
  const auto label = [&](int64_t i) {
    return i >= 0 && static_cast<size_t>(i) < names_of.size() ? names_of[static_cast<size_t>(i)] : std::to_string(i);
  };
  const std::string provider = a.provider == "cuda" ? "CUDAExecutionProvider" : "CPUExecutionProvider";
  if (a.json)
    std::printf("{\"model\": \"%s\", \"task\": \"%s\", \"provider\": \"%s\", \"ort_version\": \"%s\", "
                "\"latency_ms\": %.4f, \"size\": [%d, %d],\n",
                json_escape(a.model).c_str(), cfg.task.c_str(), provider.c_str(), Ort::GetVersionString().c_str(), ms,
                image_width, image_height);
  else
    std::printf("%s  (%s, %s, %.2f ms)\n", a.input.c_str(), cfg.task.c_str(), provider.c_str(), ms);

  if (cfg.task == "segmentation") {
    Ort::Value& masks = output("masks");
    const auto shape = masks.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.size() != 4) throw std::runtime_error("expected per-pixel class scores (N, C, H, W)");
    const std::vector<float> m = floats(masks);
    const auto shares = edgecnn::pixel_shares(m.data(), shape[1], shape[2], shape[3]);
    std::vector<size_t> order(shares.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return shares[i] > shares[j]; });
    if (!a.json) std::printf("share    class\n");
    bool first = true;
    if (a.json) std::printf(" \"classes\": [");
    for (size_t c : order) {
      if (shares[c] <= 0) continue;
      if (a.json)
        std::printf("%s{\"index\": %zu, \"label\": \"%s\", \"share\": %.9g}", first ? "" : ", ", c,
                    json_escape(label(static_cast<int64_t>(c))).c_str(), shares[c]);
      else
        std::printf("%6.4f  %s\n", shares[c], label(static_cast<int64_t>(c)).c_str());
      first = false;
    }
    if (a.json) std::printf("]}\n");
    return 0;
  }

  const edgecnn::NmsParams p = edgecnn::nms_from_metadata(meta);
  std::vector<edgecnn::Detection> dets;
  if (p.placement == "host") {
    Ort::Value& boxes = output("boxes");
    Ort::Value& scores = output("scores");
    const auto bs = boxes.GetTensorTypeAndShapeInfo().GetShape(), ss = scores.GetTensorTypeAndShapeInfo().GetShape();
    if (bs.size() != 3 || ss.size() != 3 || bs[1] != ss[1] || bs[2] != 4)
      throw std::runtime_error("host NMS expects boxes (N, A, 4) and scores (N, A, C)");
    const auto b = floats(boxes), s = floats(scores);
    dets = edgecnn::host_nms(b.data(), s.data(), ss[1], ss[2], p);
  } else {
    const auto b = floats(output("boxes")), s = floats(output("scores"));
    const auto l = ints(output("labels")), bi = ints(output("batch_index"));
    if (b.size() != 4 * s.size() || l.size() != s.size() || bi.size() != s.size())
      throw std::runtime_error("graph NMS outputs disagree in length (boxes K x 4, scores, labels, batch_index K)");
    dets = edgecnn::graph_detections(b.data(), s.data(), l.data(), bi.data(), static_cast<int64_t>(s.size()), 0, p);
  }
  edgecnn::to_image(dets, cfg.height, cfg.width, image_width, image_height);
  if (a.json)
    std::printf(" \"nms\": \"%s\", \"detections\": [", p.placement.c_str());
  else
    std::printf("score   class  box (x1, y1, x2, y2)\n");
  bool first = true;
  for (const auto& d : dets) {
    if (d.score < a.min_score) continue;
    if (a.json)
      std::printf("%s{\"index\": %lld, \"label\": \"%s\", \"score\": %.9g, \"box\": [%.9g, %.9g, %.9g, %.9g]}",
                  first ? "" : ", ", static_cast<long long>(d.label), json_escape(label(d.label)).c_str(), d.score,
                  d.box[0], d.box[1], d.box[2], d.box[3]);
    else
      std::printf("%6.4f  %-5s  %.1f %.1f %.1f %.1f\n", d.score, label(d.label).c_str(), d.box[0], d.box[1],
                  d.box[2], d.box[3]);
    first = false;
  }
  if (a.json) std::printf("]}\n");
  return 0;
}

int run(const Args& a) {
  Ort::Env env(ORT_LOGGING_LEVEL_ERROR, "edgecnn");
  std::ifstream probe(a.model, std::ios::binary);
  if (!probe) throw std::runtime_error("model file not found: " + a.model);
  Ort::Session session(env, a.model.c_str(), session_options(a));

  if (session.GetInputCount() != 1) throw std::runtime_error("expected a model with one input");
  Ort::AllocatorWithDefaultOptions alloc;
  const std::string input_name = session.GetInputNameAllocated(0, alloc).get();
  const std::string output_name = session.GetOutputNameAllocated(0, alloc).get();
  const Ort::TypeInfo type_info = session.GetInputTypeInfo(0);  // owns what input_info points into
  const auto input_info = type_info.GetTensorTypeAndShapeInfo();
  const auto elem = input_info.GetElementType();
  if (elem != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && elem != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16)
    throw std::runtime_error("model input is not float32 or float16; this example feeds float images");
  const bool fp16 = elem == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  std::vector<int64_t> shape = input_info.GetShape();
  if (shape.size() != 4) throw std::runtime_error("expected an image input of rank 4 (NCHW or NHWC)");

  const auto meta = edgecnn::read_metadata(session);
  const edgecnn::PreprocessConfig cfg = edgecnn::config_from_metadata(meta, shape, fp16);
  shape = cfg.dims();
  const size_t count = static_cast<size_t>(cfg.channels) * cfg.height * cfg.width;
  const size_t elem_bytes = fp16 ? 2 : 4;
  std::vector<uint8_t> x;  // the input tensor's bytes, in the model's dtype and layout
  if (a.raw) {
    x = edgecnn::read_raw(a.input, count * elem_bytes, std::string("one ") + (fp16 ? "float16 " : "float32 ") +
                          (cfg.nhwc ? "NHWC" : "NCHW") + " image of the model's input shape");
  } else {
    const std::vector<float> values = edgecnn::preprocess(edgecnn::read_pnm(a.input), cfg);
    x.resize(count * elem_bytes);
    if (fp16) {
      for (size_t i = 0; i < count; ++i) {
        const uint16_t h = edgecnn::to_half(values[i]);
        std::memcpy(x.data() + 2 * i, &h, 2);
      }
    } else {
      std::memcpy(x.data(), values.data(), count * 4);
    }
  }
  if (!a.dump_input.empty()) {
    std::ofstream out(a.dump_input, std::ios::binary);
    out.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size()));
    if (!out) throw std::runtime_error("cannot write " + a.dump_input);
  }

  const auto mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  Ort::Value input = Ort::Value::CreateTensor(mem, x.data(), x.size(), shape.data(), shape.size(), elem);
  if (cfg.task != "classification") {
    // a raw tensor has no picture of its own: boxes stay in input pixels
    const edgecnn::Image image = a.raw ? edgecnn::Image{cfg.width, cfg.height, cfg.channels, {}}
                                       : edgecnn::read_pnm(a.input);
    return run_task(a, session, input, input_name, meta, cfg, image.width, image.height);
  }
  const char* in_names[] = {input_name.c_str()};
  const char* out_names[] = {output_name.c_str()};
  const auto t0 = std::chrono::steady_clock::now();
  auto outputs = session.Run(Ort::RunOptions{nullptr}, in_names, &input, 1, out_names, 1);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  const auto out_info = outputs[0].GetTensorTypeAndShapeInfo();
  const size_t n_out = out_info.GetElementCount();
  std::vector<float> logits(n_out);
  if (out_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    const uint16_t* half = outputs[0].GetTensorData<uint16_t>();
    for (size_t i = 0; i < n_out; ++i) logits[i] = edgecnn::from_half(half[i]);
  } else if (out_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    const float* data = outputs[0].GetTensorData<float>();
    logits.assign(data, data + n_out);
  } else {
    throw std::runtime_error("model output is not float32 or float16; this example reads class scores");
  }
  const std::vector<float> scores = class_scores(logits, cfg);
  const std::vector<float> probs = probabilities(scores);
  std::vector<size_t> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  // ranked by the scores: softmax keeps their order, but float32 probabilities of close logits round to ties
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return scores[i] > scores[j]; });
  order.resize(std::min<size_t>(a.top, order.size()));
  const auto names = a.labels.empty() ? cfg.labels : read_labels(a.labels);
  const auto label = [&](size_t i) { return i < names.size() ? names[i] : std::to_string(i); };
  const std::string provider = a.provider == "cuda" ? "CUDAExecutionProvider" : "CPUExecutionProvider";

  if (a.json) {
    std::printf("{\"model\": \"%s\", \"provider\": \"%s\", \"ort_version\": \"%s\", \"latency_ms\": %.4f,\n",
                json_escape(a.model).c_str(), provider.c_str(), Ort::GetVersionString().c_str(), ms);
    std::printf(" \"layout\": \"%s\", \"input_dtype\": \"%s\", \"class_names\": \"%s\",\n",
                cfg.nhwc ? "NHWC" : "NCHW", fp16 ? "float16" : "float32", json_escape(cfg.class_names).c_str());
    std::printf(" \"top\": [");
    for (size_t r = 0; r < order.size(); ++r)
      std::printf("%s{\"rank\": %zu, \"index\": %zu, \"label\": \"%s\", \"probability\": %.9g}", r ? ", " : "", r + 1,
                  order[r], json_escape(label(order[r])).c_str(), probs[order[r]]);
    std::printf("],\n \"logits\": [");
    for (size_t i = 0; i < logits.size(); ++i) std::printf("%s%.9g", i ? ", " : "", logits[i]);
    std::printf("]}\n");
  } else {
    std::printf("%s  (%s, %.2f ms)\nrank  probability  class\n", a.input.c_str(), provider.c_str(), ms);
    if (names.empty() && cfg.class_names == "imagenet")
      std::fprintf(stderr, "note: ImageNet-1k classes; --labels edgecnn/data/imagenet_classes.txt names them\n");
    for (size_t r = 0; r < order.size(); ++r)
      std::printf("%4zu  %11.4f  %s\n", r + 1, probs[order[r]], label(order[r]).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const Ort::Exception& e) {
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    std::cerr << "error: onnxruntime: " << msg << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
