// Image input for edgecnn models: PPM/PGM reading and the Python runtime's preprocessing, bit for bit.
//
// edgecnn/runtime/images.py does: RGB (or grayscale "L" for 1-channel models) -> resize the shorter side to
// round(size * 256 / 224) with Pillow's BILINEAR filter -> center crop -> /255 -> (x - mean) / std -> NCHW.
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

  // Target of the shorter side before the center crop: 256 for 224 models, scaled otherwise.
  int resize() const;
};

// Binary PPM (P6, RGB) or PGM (P5, grayscale), maxval 255. Throws std::runtime_error with one clear line.
Image read_pnm(const std::string& path);

// Pillow's Image.convert: RGB -> L (ITU-R 601-2 luma in 16-bit fixed point), L -> RGB (replicate).
Image convert(const Image& img, int channels);

// Pillow's Image.resize(size, BILINEAR) for 8-bit images.
Image resize_bilinear(const Image& img, int width, int height);

// Resize the shorter side, center crop (zero padding when the crop is larger), normalize: CHW float32.
std::vector<float> preprocess(const Image& img, const PreprocessConfig& cfg);

// A raw little-endian float32 file holding exactly `count` values (one preprocessed NCHW image).
std::vector<float> read_raw_f32(const std::string& path, size_t count);

}  // namespace edgecnn
