// Image input for edgecnn models: PPM/PGM reading and the Python runtime's preprocessing, bit for bit.
//
// edgecnn/runtime/images.py does: RGB (or grayscale "L" for 1-channel models) -> resize the shorter side to
// round(min(size) / crop_fraction) with Pillow's BILINEAR filter -> center crop (no crop_fraction: resize to the
// input size) -> /255 -> (x - mean) / std in the model's channel order (RGB or BGR) and layout (NCHW or NHWC)
// -> float16 when the model's input is (round to nearest even, as numpy's astype).
// Pillow's bilinear resize is an antialiased triangle filter evaluated in 8-bit fixed point; it is
// reproduced here exactly (same coefficients, same rounding), so the tensor equals Python's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgecnn {

// An 8-bit image, interleaved channels (1 = grayscale, 3 = RGB), row-major.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // width * height * channels

  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * channels; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * channels; }
};

// What preprocessing needs, read from the model's metadata (see metadata.hpp).
struct PreprocessConfig {
  int height = 224;
  int width = 224;
  int channels = 3;
  std::vector<float> mean{0.485f, 0.456f, 0.406f};
  std::vector<float> std{0.229f, 0.224f, 0.225f};
  bool nhwc = false;            // edgecnn.input_layout NHWC (TensorFlow/Keras files)
  bool bgr = false;             // edgecnn.channel_order bgr (Caffe-style files; mean/std are in BGR order)
  double crop_fraction = 224.0 / 256.0;  // edgecnn.crop_fraction; 0 = null: resize to the input size, no crop
  bool fp16 = false;            // the graph's input (and edgecnn.io_dtype) is float16
  int background_class = -1;    // edgecnn.background_class (0/1); -1: not given (1001 outputs mean background)
  std::vector<std::string> labels;  // edgecnn.labels
  std::string class_names;          // edgecnn.class_names: "imagenet" when ImageNet-1k's names apply
  std::string task = "classification";  // edgecnn.task: classification, detection or segmentation

  // Target of the shorter side before the center crop: 256 for 224 models, scaled otherwise.
  int resize() const;
  // Shape of one image's tensor: {1, C, H, W} or {1, H, W, C}.
  std::vector<int64_t> dims() const;
};

// Binary PPM (P6, RGB) or PGM (P5, grayscale), maxval 255. Throws std::runtime_error with one clear line.
Image read_pnm(const std::string& path);

// Pillow's Image.convert: RGB -> L (ITU-R 601-2 luma in 16-bit fixed point), L -> RGB (replicate).
Image convert(const Image& img, int channels);

// Pillow's Image.resize(size, BILINEAR) for 8-bit images.
Image resize_bilinear(const Image& img, int width, int height);

// Resize the shorter side, center crop (zero padding when the crop is larger), normalize: float32 in the
// model's layout (CHW or HWC) and channel order.
std::vector<float> preprocess(const Image& img, const PreprocessConfig& cfg);

// float32 -> IEEE half bits, rounded to nearest even (numpy's npy_floatbits_to_halfbits), and back.
uint16_t to_half(float value);
float from_half(uint16_t bits);

// A raw little-endian file of exactly `bytes` bytes (one preprocessed image in the model's input dtype).
std::vector<uint8_t> read_raw(const std::string& path, size_t bytes, const std::string& what);

}  // namespace edgecnn
