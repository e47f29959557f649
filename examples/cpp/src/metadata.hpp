// edgecnn's metadata contract, read from an ONNX Runtime session (keys written by edgecnn's exporter).
//
//   edgecnn.input_size  JSON [height, width]     edgecnn.channels  "3" or "1"
//   edgecnn.mean        JSON list, one per channel, on [0,1]-scaled pixels
//   edgecnn.std         JSON list, one per channel
//   edgecnn.model, edgecnn.class_names ...       (strings)
//
// Files without these keys fall back to the graph's input shape and ImageNet mean/std, like the Python runtime.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <map>
#include <string>
#include <vector>

#include "preprocess.hpp"

namespace edgecnn {

// All custom metadata of the session (key -> string value).
std::map<std::string, std::string> read_metadata(Ort::Session& session);

// A JSON list of numbers ("[0.485, 0.456, 0.406]") -> doubles; throws std::runtime_error naming `key`.
std::vector<double> parse_number_list(const std::string& json, const std::string& key);

// Preprocessing settings from the metadata, filling gaps from the NCHW input shape (-1 = dynamic).
PreprocessConfig config_from_metadata(const std::map<std::string, std::string>& meta,
                                      const std::vector<int64_t>& input_shape);

}  // namespace edgecnn
