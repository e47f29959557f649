// See preprocess.hpp. The resampling code follows Pillow's libImaging/Resample.c (8 bits per channel).
#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace edgecnn {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed-point precision for 8-bit images

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// Next whitespace-separated token of a PNM header, skipping '#' comments.
std::string pnm_token(std::istream& in) {
  std::string tok;
  int c;
  while ((c = in.get()) != EOF) {
    if (c == '#') {
      while ((c = in.get()) != EOF && c != '\n') {
      }
    } else if (std::isspace(c)) {
      if (!tok.empty()) return tok;
    } else {
      tok.push_back(static_cast<char>(c));
    }
  }
  return tok;
}

int pnm_int(std::istream& in, const std::string& path) {
  const std::string tok = pnm_token(in);
  try {
    size_t used = 0;
    const int v = std::stoi(tok, &used);
    if (used == tok.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  fail("cannot read image " + path + ": bad PPM/PGM header value '" + tok + "'");
}

// Pillow's triangle filter.
double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for a full-image box [0, in_size).
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (xmin, count) per output pixel
  std::vector<int32_t> k;   // ksize fixed-point weights per output pixel
};

Coeffs precompute_coeffs(int in_size, int out_size) {
  const double in0 = 0.0, in1 = static_cast<float>(in_size);  // Pillow passes the box as floats
  const double scale = (in1 - in0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // bilinear support is 1
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      const double scaled = v * (1 << kPrecisionBits);
      c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

}  // namespace

int PreprocessConfig::resize() const {
  // Python: int(round(min(size) / crop_fraction)); round half to even, as std::nearbyint does by default.
  return static_cast<int>(std::nearbyint(std::min(height, width) / (crop_fraction > 0 ? crop_fraction : 1.0)));
}

std::vector<int64_t> PreprocessConfig::dims() const {
  if (nhwc) return {1, height, width, channels};
  return {1, channels, height, width};
}

Image read_pnm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("image not found or unreadable: " + path);
  const std::string magic = pnm_token(in);
  if (magic != "P6" && magic != "P5")
    fail("cannot read image " + path + ": expected a binary PPM (P6) or PGM (P5) file, or a raw float32 tensor");
  Image img;
  img.channels = magic == "P6" ? 3 : 1;
  img.width = pnm_int(in, path);
  img.height = pnm_int(in, path);
  if (pnm_int(in, path) != 255) fail("cannot read image " + path + ": only 8-bit files (maxval 255) are supported");
  // pnm_token consumed exactly one whitespace byte after maxval, as the format requires.
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * img.channels);
  in.read(reinterpret_cast<char*>(img.pixels.data()), static_cast<std::streamsize>(img.pixels.size()));
  if (in.gcount() != static_cast<std::streamsize>(img.pixels.size()))
    fail("cannot read image " + path + ": file is truncated");
  return img;
}

Image convert(const Image& img, int channels) {
  if (img.channels == channels) return img;
  Image out{img.width, img.height, channels, {}};
  const size_t n = static_cast<size_t>(img.width) * img.height;
  out.pixels.resize(n * channels);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &img.pixels[i * img.channels];
    if (channels == 1) {  // Pillow's L24: (r*19595 + g*38470 + b*7471 + 0x8000) >> 16
      out.pixels[i] = static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    } else {
      std::fill_n(&out.pixels[i * 3], 3, p[0]);
    }
  }
  return out;
}

namespace {

// One pass of Pillow's resample: rows [y_first, y_first + rows) of img to `width` columns.
Image horizontal_pass(const Image& img, int width, const Coeffs& ch, int y_first, int rows) {
  const int nc = img.channels;
  Image out{width, rows, nc, {}};
  out.pixels.resize(static_cast<size_t>(width) * rows * nc);
  for (int yy = 0; yy < rows; ++yy) {
    const uint8_t* src = img.row(yy + y_first);
    uint8_t* dst = out.row(yy);
    for (int xx = 0; xx < width; ++xx) {
      const int xmin = ch.bounds[xx * 2], xmax = ch.bounds[xx * 2 + 1];
      const int32_t* k = &ch.k[static_cast<size_t>(xx) * ch.ksize];
      for (int c = 0; c < nc; ++c) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) ss += src[(x + xmin) * nc + c] * k[x];
        dst[xx * nc + c] = clip8(ss);
      }
    }
  }
  return out;
}

// The other pass: img's rows to `height` rows (bounds relative to img's first row).
Image vertical_pass(const Image& img, int height, const Coeffs& cv) {
  const int nc = img.channels;
  Image out{img.width, height, nc, {}};
  out.pixels.resize(static_cast<size_t>(img.width) * height * nc);
  for (int yy = 0; yy < height; ++yy) {
    const int ymin = cv.bounds[yy * 2], ymax = cv.bounds[yy * 2 + 1];
    const int32_t* k = &cv.k[static_cast<size_t>(yy) * cv.ksize];
    uint8_t* dst = out.row(yy);
    for (int i = 0; i < img.width * nc; ++i) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += img.row(y + ymin)[i] * k[y];
      dst[i] = clip8(ss);
    }
  }
  return out;
}

}  // namespace

Image resize_bilinear(const Image& img, int width, int height) {
  const bool need_h = width != img.width, need_v = height != img.height;
  Coeffs cv = precompute_coeffs(img.height, height);
  // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as the
  // width does (each pass rounds to 8 bits, so the order changes pixels), else the horizontal pass first.
  if (img.height - height > 0 && img.height - height > (img.width - width) * 2) {
    Image tmp = need_v ? vertical_pass(img, height, cv) : img;
    return need_h ? horizontal_pass(tmp, width, precompute_coeffs(tmp.width, width), 0, tmp.height) : tmp;
  }
  Image tmp = img;
  if (need_h) {  // only the rows the vertical pass will read
    const int y_first = cv.bounds[0];
    const int y_last = cv.bounds[height * 2 - 2] + cv.bounds[height * 2 - 1];
    for (int i = 0; i < height; ++i) cv.bounds[i * 2] -= y_first;
    tmp = horizontal_pass(img, width, precompute_coeffs(img.width, width), y_first, y_last - y_first);
  }
  return need_v ? vertical_pass(tmp, height, cv) : tmp;
}

std::vector<float> preprocess(const Image& input, const PreprocessConfig& cfg) {
  Image img = convert(input, cfg.channels);
  int w = img.width, h = img.height;
  int new_w = cfg.width, new_h = cfg.height;  // no crop: the whole image to the input size
  if (cfg.crop_fraction > 0) {
    // Resize the shorter side (Python: int(short * h / w) for the longer side).
    const int short_side = cfg.resize();
    new_w = w <= h ? short_side : static_cast<int>(static_cast<double>(short_side) * w / h);
    new_h = w <= h ? static_cast<int>(static_cast<double>(short_side) * h / w) : short_side;
  }
  if (new_w != w || new_h != h) img = resize_bilinear(img, new_w, new_h);
  w = img.width;
  h = img.height;
  // Center crop; pixels outside the image are zero (torchvision pads a too-small image with zeros).
  const int th = cfg.height, tw = cfg.width;
  const int pad_x = std::max(tw - w, 0) / 2, pad_y = std::max(th - h, 0) / 2;
  const int cw = std::max(w, tw), chh = std::max(h, th);
  const int top = static_cast<int>(std::nearbyint((chh - th) / 2.0)) - pad_y;
  const int left = static_cast<int>(std::nearbyint((cw - tw) / 2.0)) - pad_x;
  const int nc = cfg.channels;
  std::vector<float> out(static_cast<size_t>(nc) * th * tw);
  for (int c = 0; c < nc; ++c) {
    const int src = cfg.bgr && nc == 3 ? 2 - c : c;  // model channel c reads pixel channel src (BGR: reversed)
    for (int y = 0; y < th; ++y) {
      for (int x = 0; x < tw; ++x) {
        const int sy = y + top, sx = x + left;
        const uint8_t v = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? img.row(sy)[sx * nc + src] : 0;
        // Same float32 operations as numpy: (v / 255) - mean, then / std.
        const float scaled = static_cast<float>(v) / 255.0f;
        const size_t i = cfg.nhwc ? (static_cast<size_t>(y) * tw + x) * nc + c
                                  : (static_cast<size_t>(c) * th + y) * tw + x;
        out[i] = (scaled - cfg.mean[c]) / cfg.std[c];
      }
    }
  }
  return out;
}

uint16_t to_half(float value) {
  uint32_t f;
  std::memcpy(&f, &value, sizeof f);
  const uint32_t h_sgn = (f & 0x80000000u) >> 16;
  uint32_t f_exp = f & 0x7f800000u;
  if (f_exp >= 0x47800000u) {  // overflow to infinity, or infinity / NaN
    if (f_exp == 0x7f800000u && (f & 0x007fffffu) != 0) return static_cast<uint16_t>(h_sgn | 0x7e00u);
    return static_cast<uint16_t>(h_sgn | 0x7c00u);
  }
  uint32_t f_sig;
  if (f_exp <= 0x38000000u) {  // a half subnormal, or zero
    if (f_exp < 0x33000000u) return static_cast<uint16_t>(h_sgn);
    f_exp >>= 23;
    f_sig = (0x00800000u + (f & 0x007fffffu)) >> (113 - f_exp);
    if ((f_sig & 0x00003fffu) != 0x00001000u || (f & 0x000007ffu) != 0) f_sig += 0x00001000u;
    return static_cast<uint16_t>(h_sgn + (f_sig >> 13));
  }
  const uint32_t h_exp = (f_exp - 0x38000000u) >> 13;
  f_sig = f & 0x007fffffu;
  if ((f_sig & 0x00003fffu) != 0x00001000u) f_sig += 0x00001000u;
  return static_cast<uint16_t>(h_sgn + h_exp + (f_sig >> 13));  // a carry into the exponent is right
}

float from_half(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const float s = (h & 0x8000) ? -1.0f : 1.0f;
  if (e == 0) return s * std::ldexp(static_cast<float>(m), -24);
  if (e == 31) return m ? std::nanf("") : s * INFINITY;
  return s * std::ldexp(1.0f + m / 1024.0f, e - 15);
}

std::vector<uint8_t> read_raw(const std::string& path, size_t bytes, const std::string& what) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("input not found or unreadable: " + path);
  const auto size = static_cast<size_t>(in.tellg());
  if (size != bytes)
    fail("raw input " + path + " has " + std::to_string(size) + " bytes; expected " + std::to_string(bytes) +
         " (" + what + ")");
  std::vector<uint8_t> data(bytes);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(size));
  return data;
}

}  // namespace edgecnn
