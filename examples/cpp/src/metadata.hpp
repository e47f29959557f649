// edgecnn's metadata contract, read from an ONNX Runtime session (keys written by edgecnn's exporter and
// `edgecnn inspect --save-metadata`; the contract is edgecnn/metadata.py).
//
//   edgecnn.input_size  JSON [height, width]     edgecnn.channels       "3" or "1"
//   edgecnn.mean        JSON list, one per channel, on [0,1]-scaled pixels (in the model's channel order)
//   edgecnn.std         JSON list, one per channel
//   edgecnn.input_layout  NCHW or NHWC           edgecnn.channel_order  rgb or bgr
//   edgecnn.crop_fraction JSON number or null    edgecnn.io_dtype       float32 or float16
//   edgecnn.background_class "0"/"1"             edgecnn.labels         JSON list of class names
//   edgecnn.task        classification, detection, segmentation   edgecnn.letterbox  refused when set
//   edgecnn.resize      crop or stretch                            edgecnn.nms, edgecnn.outputs (tasks.hpp)
//   edgecnn.head        a foreign detection head (YOLO, SSD, NMS rows): refused, Python decodes it
//
// Files without these keys fall back to the graph's input shape and ImageNet mean/std, like the Python runtime.
// A key this example cannot honour is an error at load, never a wrong input.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <map>
#include <string>
#include <vector>

#include "preprocess.hpp"

namespace edgecnn {

// The contract's keys (without "edgecnn."), by what this example does with them. A test keeps these lists equal
// to edgecnn/metadata.py's KEYS, so a new key is decided here.
// HONOURED_KEYS: input_layout input_size channels mean std channel_order crop_fraction io_dtype background_class
//                labels class_names task letterbox resize outputs nms box_format head
// IGNORED_KEYS: model family num_classes precision opset num_params macs batch edgecnn_version torch_version
//               weights_sha256 source optimize quantization

// All custom metadata of the session (key -> string value).
std::map<std::string, std::string> read_metadata(Ort::Session& session);

// A JSON list of numbers ("[0.485, 0.456, 0.406]") -> doubles; throws std::runtime_error naming `key`.
std::vector<double> parse_number_list(const std::string& json, const std::string& key);

// A JSON list of strings (["cat", "dog"]) -> strings (\uXXXX escapes as UTF-8); throws naming `key`.
std::vector<std::string> parse_string_list(const std::string& json, const std::string& key);

// Preprocessing settings from the metadata, filling gaps from the input shape (-1 = dynamic). `input_fp16`: the
// graph's input is float16. Throws std::runtime_error for what this example cannot honour.
PreprocessConfig config_from_metadata(const std::map<std::string, std::string>& meta,
                                      const std::vector<int64_t>& input_shape, bool input_fp16);

}  // namespace edgecnn
