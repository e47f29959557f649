// edgecnn for JavaScript (Node.js and browsers): read a model's edgecnn.* metadata, read PPM/PGM images,
// preprocess exactly as the Python runtime does (edgecnn/runtime/images.py), and turn logits into a top-k.
// No dependencies: onnxruntime-node / onnxruntime-web run the model; this module only prepares and reads.
//
// Preprocessing: RGB (or Pillow's "L" grayscale for 1-channel models) -> resize the shorter side to
// round(min(size) / crop_fraction) with Pillow's BILINEAR filter (antialiased triangle filter in 8-bit fixed point,
// reproduced bit for bit) -> center crop (edgecnn.crop_fraction null: resize to the input size, no crop) -> /255
// -> (x - mean) / std in float32, in the model's channel order (BGR for edgecnn.channel_order bgr) and layout
// (NCHW or NHWC) -> float16 when the model's input is (numpy's rounding). Every key of the metadata contract is
// either honoured here or refused at load (configFromMetadata); none is silently ignored.

const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed-point precision for 8-bit images
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

// ---- metadata: ModelProto.metadata_props (field 14) read straight from the protobuf bytes

function readVarint(buf, pos) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error('not an ONNX file: truncated protobuf');
    value += (b & 0x7f) * scale; // Number arithmetic: safe beyond 2^31 (large initializers)
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
}

/** All metadata_props of an .onnx file (Uint8Array) as {key: value}; ONNX Runtime's JS API doesn't expose them. */
export function readOnnxMetadata(bytes) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const text = new TextDecoder();
  const meta = {};
  let pos = 0;
  while (pos < buf.length) {
    let tag;
    [tag, pos] = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      [, pos] = readVarint(buf, pos);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      if (field === 14) {
        // StringStringEntryProto { key = 1; value = 2; }
        const entry = buf.subarray(pos, pos + len);
        let p = 0;
        let key = '';
        let value = '';
        while (p < entry.length) {
          let t;
          let n;
          [t, p] = readVarint(entry, p);
          [n, p] = readVarint(entry, p);
          const s = text.decode(entry.subarray(p, p + n));
          if (t >> 3 === 1) key = s;
          else if (t >> 3 === 2) value = s;
          p += n;
        }
        meta[key] = value;
      }
      pos += len;
    } else {
      throw new Error(`not an ONNX file: unexpected protobuf wire type ${wire}`);
    }
  }
  return meta;
}

/** edgecnn's metadata contract (edgecnn/metadata.py KEYS, plus keys other edgecnn writers add), by what this
 * module does with each key. A test keeps these lists equal to the contract, so a new key is decided here. */
export const HONOURED_KEYS = [
  'input_layout', 'input_size', 'channels', 'mean', 'std', 'channel_order', 'crop_fraction', 'io_dtype',
  'background_class', 'labels', 'class_names', 'task', 'letterbox', 'resize', 'outputs', 'nms', 'box_format', 'head',
];
/** Keys that describe the file, not its input or output: read by nobody here. */
export const IGNORED_KEYS = [
  'model', 'family', 'num_classes', 'precision', 'opset', 'num_params', 'macs', 'batch', 'edgecnn_version',
  'torch_version', 'weights_sha256', 'source', 'optimize', 'quantization',
];

/** NCHW or NHWC when exactly one of axes 1 and 3 holds 1 or 3 channels (edgecnn.io_spec.guess_layout). */
export function guessLayout(dims) {
  if (dims.length !== 4) return null;
  const isChannels = (d) => d === 1 || d === 3;
  if (isChannels(dims[1]) && !isChannels(dims[3])) return 'NCHW';
  if (isChannels(dims[3]) && !isChannels(dims[1])) return 'NHWC';
  return null;
}

/** Preprocessing settings from edgecnn metadata, filling gaps from the input shape, like the Python runtime
 * (PreprocessConfig.from_metadata). `inputType`: the graph input's element type ('float32', 'float16').
 * What this module cannot honour (another task, a letterbox, another input type) is an error here, at load. */
export function configFromMetadata(meta, inputShape = [], inputType = null) {
  const get = (k) => meta[`edgecnn.${k}`];
  const json = (k) => {
    try {
      return JSON.parse(get(k));
    } catch {
      throw new Error(`metadata edgecnn.${k} is not valid JSON: ${String(get(k)).slice(0, 60)}`);
    }
  };
  const task = get('task') || 'classification';
  if (!['classification', 'detection', 'segmentation'].includes(task)) {
    throw new Error(`unknown edgecnn.task '${task}' (classification, detection or segmentation)`);
  }
  const letterbox = get('letterbox');
  if (letterbox !== undefined && !['', 'false', 'null', '0'].includes(letterbox.toLowerCase())) {
    throw new Error(`the file asks for letterbox preprocessing (edgecnn.letterbox = ${letterbox}), which this example does not do`);
  }
  const resize = (get('resize') ?? '').toLowerCase();
  if (resize !== '' && resize !== 'crop' && resize !== 'stretch') {
    throw new Error(`the file asks for '${get('resize')}' resizing (edgecnn.resize), which this example does not do (crop or stretch)`);
  }
  const head = get('head');
  if (head !== undefined && head !== '' && head !== 'null') {
    throw new Error(`the file's outputs are a foreign detection head (edgecnn.head = ${head.slice(0, 60)}), which this example does not decode: run it with edgecnn's Python runtime`);
  }
  const boxFormat = get('box_format');
  if (boxFormat !== undefined && boxFormat !== '' && boxFormat.toLowerCase() !== 'xyxy') {
    throw new Error(`edgecnn.box_format '${boxFormat}': this example reads xyxy boxes`);
  }
  const dims = inputShape.map((d) => (typeof d === 'number' && d > 0 ? d : null));
  const layout = (get('input_layout') ?? guessLayout(dims) ?? 'NCHW').toUpperCase();
  if (layout !== 'NCHW' && layout !== 'NHWC') throw new Error(`unsupported edgecnn.input_layout '${layout}' (NCHW or NHWC)`);
  const [cAxis, hAxis, wAxis] = layout === 'NCHW' ? [1, 2, 3] : [3, 1, 2];
  const channels = get('channels') !== undefined ? Number(get('channels')) : dims[cAxis] ?? 3;
  if (channels !== 1 && channels !== 3) throw new Error(`unsupported channel count ${channels} (expected 1 or 3)`);
  let size = get('input_size') !== undefined ? json('input_size') : [dims[hAxis], dims[wAxis]];
  if (typeof size === 'number') size = [size, size];
  if (!size[0] || !size[1]) size = [224, 224];
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  let mean = channels === 1 ? [sum(IMAGENET_MEAN) / 3] : IMAGENET_MEAN;
  let std = channels === 1 ? [sum(IMAGENET_STD) / 3] : IMAGENET_STD;
  if (get('mean') !== undefined) mean = json('mean');
  if (get('std') !== undefined) std = json('std');
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`metadata mean/std have ${mean.length}/${std.length} values for a ${channels}-channel model`);
  }
  const order = (get('channel_order') ?? 'rgb').toLowerCase();
  if (order !== 'rgb' && order !== 'bgr') throw new Error(`unsupported edgecnn.channel_order '${order}' (rgb or bgr)`);
  // stretch: the whole image resized to the input size, unless edgecnn.crop_fraction says otherwise
  const crop = get('crop_fraction') !== undefined ? json('crop_fraction') : resize === 'stretch' ? null : 224 / 256;
  if (crop !== null && !(typeof crop === 'number' && crop > 0 && crop <= 1)) {
    throw new Error(`metadata edgecnn.crop_fraction must be null or in (0, 1], got ${get('crop_fraction')}`);
  }
  const declared = get('io_dtype');
  const dtype = inputType ?? declared ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') {
    throw new Error(`model input is ${dtype}; this example feeds float32 or float16 images`);
  }
  if (declared !== undefined && inputType && declared !== inputType) {
    throw new Error(`metadata edgecnn.io_dtype says ${declared} but the model input is ${inputType}`);
  }
  const background = get('background_class') !== undefined ? Number(get('background_class')) : null;
  const labels = get('labels') !== undefined ? json('labels') : null;
  return {
    height: size[0], width: size[1], channels, mean, std, layout, bgr: order === 'bgr', crop, dtype, background,
    labels: Array.isArray(labels) ? labels : null, model: get('model') ?? '', classNames: get('class_names'), task,
  };
}

/** The input tensor's shape for one image: [1, C, H, W] or [1, H, W, C]. */
export function inputDims(cfg) {
  return cfg.layout === 'NCHW' ? [1, cfg.channels, cfg.height, cfg.width] : [1, cfg.height, cfg.width, cfg.channels];
}

// ---- images: {width, height, channels, pixels: Uint8Array (interleaved)}

function pnmHeader(buf) {
  const tokens = [];
  let pos = 0;
  while (tokens.length < 4 && pos < buf.length) {
    const c = buf[pos];
    if (c === 0x23) { // '#' comment to end of line
      while (pos < buf.length && buf[pos] !== 0x0a) pos++;
    } else if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) {
      pos++;
    } else {
      let tok = '';
      while (pos < buf.length && buf[pos] > 0x20) tok += String.fromCharCode(buf[pos++]);
      tokens.push(tok);
    }
  }
  return [tokens, pos + 1]; // exactly one whitespace byte follows maxval
}

/** A binary PPM (P6) or PGM (P5) file, maxval 255. */
export function readPnm(bytes) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const [[magic, w, h, maxval], start] = pnmHeader(buf);
  if (magic !== 'P6' && magic !== 'P5') throw new Error('expected a binary PPM (P6) or PGM (P5) image');
  if (Number(maxval) !== 255) throw new Error('only 8-bit PPM/PGM files (maxval 255) are supported');
  const img = { width: Number(w), height: Number(h), channels: magic === 'P6' ? 3 : 1 };
  const n = img.width * img.height * img.channels;
  if (!(n > 0) || start + n > buf.length) throw new Error('PPM/PGM file is truncated or has a bad header');
  img.pixels = buf.slice(start, start + n);
  return img;
}

/** RGBA pixels (a canvas ImageData) -> RGB image. */
export function fromRgba(data, width, height) {
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < pixels.length; i += 3, j += 4) {
    pixels[i] = data[j];
    pixels[i + 1] = data[j + 1];
    pixels[i + 2] = data[j + 2];
  }
  return { width, height, channels: 3, pixels };
}

/** Pillow's Image.convert: RGB -> L (16-bit fixed-point luma), L -> RGB (replicate). */
export function convert(img, channels) {
  if (img.channels === channels) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    if (channels === 1) {
      const p = i * 3;
      out[i] = (img.pixels[p] * 19595 + img.pixels[p + 1] * 38470 + img.pixels[p + 2] * 7471 + 0x8000) >>> 16;
    } else {
      out.fill(img.pixels[i], i * 3, i * 3 + 3);
    }
  }
  return { width: img.width, height: img.height, channels, pixels: out };
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc (bilinear, whole-image box).
function coeffs(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const d = Math.abs((x + xmin - center + 0.5) * ss);
      w[x] = d < 1 ? 1 - d : 0;
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      const scaled = v * (1 << PRECISION_BITS);
      k[xx * ksize + x] = Math.trunc(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, k };
}

function clip8(v) {
  if (v >= 1 << PRECISION_BITS << 8) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

// One pass of Pillow's resample: rows [yFirst, yFirst + rows) of img to `width` columns.
function horizontalPass(img, width, ch, yFirst, rows) {
  const nc = img.channels;
  const out = { width, height: rows, channels: nc, pixels: new Uint8Array(width * rows * nc) };
  for (let yy = 0; yy < rows; yy++) {
    const src = (yy + yFirst) * img.width * nc;
    const dst = yy * width * nc;
    for (let xx = 0; xx < width; xx++) {
      const xmin = ch.bounds[xx * 2];
      const xmax = ch.bounds[xx * 2 + 1];
      const kk = xx * ch.ksize;
      for (let c = 0; c < nc; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let x = 0; x < xmax; x++) ss += img.pixels[src + (x + xmin) * nc + c] * ch.k[kk + x];
        out.pixels[dst + xx * nc + c] = clip8(ss);
      }
    }
  }
  return out;
}

// The other pass: img's rows to `height` rows (bounds relative to img's first row).
function verticalPass(img, height, cv) {
  const rowLen = img.width * img.channels;
  const out = { width: img.width, height, channels: img.channels, pixels: new Uint8Array(rowLen * height) };
  for (let yy = 0; yy < height; yy++) {
    const ymin = cv.bounds[yy * 2];
    const ymax = cv.bounds[yy * 2 + 1];
    const kk = yy * cv.ksize;
    for (let i = 0; i < rowLen; i++) {
      let ss = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < ymax; y++) ss += img.pixels[(y + ymin) * rowLen + i] * cv.k[kk + y];
      out.pixels[yy * rowLen + i] = clip8(ss);
    }
  }
  return out;
}

/** Pillow's Image.resize((width, height), BILINEAR) for 8-bit images, pass order included: Pillow 13 runs the
 * vertical pass first when the height shrinks by more than twice as many pixels as the width does (each pass
 * rounds to 8 bits, so the order changes pixels), else the horizontal pass first, over the rows it needs. */
export function resizeBilinear(img, width, height) {
  const needH = width !== img.width;
  const needV = height !== img.height;
  const cv = coeffs(img.height, height);
  if (img.height - height > 0 && img.height - height > (img.width - width) * 2) {
    const tmp = needV ? verticalPass(img, height, cv) : img;
    return needH ? horizontalPass(tmp, width, coeffs(tmp.width, width), 0, tmp.height) : tmp;
  }
  let tmp = img;
  if (needH) {
    const yFirst = cv.bounds[0];
    const yLast = cv.bounds[height * 2 - 2] + cv.bounds[height * 2 - 1];
    for (let i = 0; i < height; i++) cv.bounds[i * 2] -= yFirst;
    tmp = horizontalPass(img, width, coeffs(img.width, width), yFirst, yLast - yFirst);
  }
  return needV ? verticalPass(tmp, height, cv) : tmp;
}

/** Python's round(): half to even. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Image -> normalized Float32Array of the model's input size, in its layout (CHW or HWC) and channel order:
 * resize the shorter side and center crop (or, without a crop, resize to the input size), then (x/255 - mean) / std.
 * Cast with toInputData(x, cfg) for the model. */
export function preprocess(input, cfg) {
  const img0 = convert(input, cfg.channels);
  const { width: w0, height: h0 } = img0;
  const th = cfg.height;
  const tw = cfg.width;
  let newW = tw;
  let newH = th;
  if (cfg.crop !== null && cfg.crop !== undefined) { // Python: int(round(min(size) / crop_fraction))
    const short = roundHalfEven(Math.min(th, tw) / cfg.crop);
    newW = w0 <= h0 ? short : Math.trunc((short * w0) / h0);
    newH = w0 <= h0 ? Math.trunc((short * h0) / w0) : short;
  }
  const img = newW !== w0 || newH !== h0 ? resizeBilinear(img0, newW, newH) : img0;
  const { width: w, height: h } = img;
  const nc = cfg.channels;
  // center crop on a zero-padded canvas when the crop is larger than the image (as torchvision does)
  const padX = Math.floor(Math.max(tw - w, 0) / 2);
  const padY = Math.floor(Math.max(th - h, 0) / 2);
  const top = roundHalfEven((Math.max(h, th) - th) / 2) - padY;
  const left = roundHalfEven((Math.max(w, tw) - tw) / 2) - padX;
  const mean = cfg.mean.map(Math.fround);
  const std = cfg.std.map(Math.fround);
  const nchw = (cfg.layout ?? 'NCHW') === 'NCHW';
  const out = new Float32Array(nc * th * tw);
  for (let c = 0; c < nc; c++) {
    const src = cfg.bgr && nc === 3 ? 2 - c : c; // model channel c reads pixel channel src (BGR: reversed)
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const sy = y + top;
        const sx = x + left;
        const v = sy >= 0 && sy < h && sx >= 0 && sx < w ? img.pixels[(sy * w + sx) * nc + src] : 0;
        // float32 arithmetic, as numpy does: (v / 255 - mean) / std
        const i = nchw ? (c * th + y) * tw + x : (y * tw + x) * nc + c;
        out[i] = Math.fround(Math.fround(Math.fround(v / 255) - mean[c]) / std[c]);
      }
    }
  }
  return out;
}

// ---- float16: numpy's float32 -> float16 conversion (round to nearest even), bit for bit

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** float32 value -> IEEE half bits, rounded to nearest even (numpy's npy_floatbits_to_halfbits). */
export function toHalfBits(value) {
  F32[0] = value;
  const f = U32[0];
  const hSgn = (f & 0x80000000) >>> 16;
  let fExp = f & 0x7f800000;
  if (fExp >= 0x47800000) { // overflow to infinity, or infinity / NaN
    if (fExp === 0x7f800000 && (f & 0x007fffff) !== 0) return hSgn | 0x7e00;
    return hSgn | 0x7c00;
  }
  let fSig;
  if (fExp <= 0x38000000) { // a half subnormal, or zero
    if (fExp < 0x33000000) return hSgn;
    fExp >>>= 23;
    fSig = (0x00800000 + (f & 0x007fffff)) >>> (113 - fExp);
    if ((fSig & 0x00003fff) !== 0x00001000 || (f & 0x000007ff) !== 0) fSig += 0x00001000;
    return hSgn + (fSig >>> 13);
  }
  const hExp = (fExp - 0x38000000) >>> 13;
  fSig = f & 0x007fffff;
  if ((fSig & 0x00003fff) !== 0x00001000) fSig += 0x00001000;
  return (hSgn + hExp + (fSig >>> 13)) & 0xffff; // a carry into the exponent is right (and may give infinity)
}

/** IEEE half bits -> number. */
export function fromHalfBits(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The preprocessed image as the model's input data: the Float32Array, or its float16 bits (Uint16Array). */
export function toInputData(x, cfg) {
  if (cfg.dtype !== 'float16') return x;
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = toHalfBits(x[i]);
  return out;
}

/** An output tensor's data as numbers (float16 bits decoded). */
export function outputValues(tensor) {
  const d = tensor.data;
  if (tensor.type === 'float16' && d instanceof Uint16Array) return Array.from(d, fromHalfBits);
  return Array.from(d, Number);
}

/** The class scores of a classifier's output: TensorFlow's background class (output 0) dropped when the file says
 * so (edgecnn.background_class), or for 1001 outputs when it does not (edgecnn.runtime.postprocess.class_scores). */
export function classScores(values, cfg) {
  const drop = values.length > 1 && (cfg.background !== null && cfg.background !== undefined
    ? cfg.background === 1 : values.length === 1001);
  if (!drop) return values;
  const rest = values.slice(1);
  const sum = rest.reduce((a, b) => a + b, 0);
  const isProb = values.every((v) => v >= 0 && v <= 1) && Math.abs(values.reduce((a, b) => a + b, 0) - 1) <= 1e-3 + 1e-5;
  return isProb && sum > 0 ? rest.map((v) => Math.fround(v / sum)) : rest;
}

// ---- scores

/** Softmax in double (unless the scores already are probabilities), as edgecnn.runtime.postprocess does. */
export function probabilities(scores) {
  const s = Array.from(scores);
  const sum = s.reduce((a, b) => a + b, 0);
  if (s.every((v) => v >= 0 && v <= 1) && Math.abs(sum - 1) <= 1e-3 + 1e-5) return s;
  const max = Math.max(...s);
  const e = s.map((v) => Math.exp(v - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => Math.fround(v / total));
}

/** Top-k [{rank, index, label, probability}], best first by score (stable for ties): softmax keeps the order of
 * the scores, but float32 probabilities of close logits round to ties. */
export function topk(scores, k = 5, names = null) {
  const probs = probabilities(scores);
  const s = Array.from(scores);
  const order = probs.map((p, i) => i).sort((a, b) => s[b] - s[a] || a - b);
  return order.slice(0, Math.max(1, Math.min(k, probs.length))).map((index, r) => ({
    rank: r + 1, index, label: names && names[index] !== undefined ? names[index] : String(index), probability: probs[index],
  }));
}

// ---- detection and segmentation (edgecnn/runtime/vision/detection.py and segmentation.py)

/** edgecnn.nms: where NMS runs (graph or host) and torchvision's post-processing parameters. */
export function nmsFromMetadata(meta) {
  const get = (k) => meta[`edgecnn.${k}`];
  const raw = get('nms');
  if (raw === undefined) {
    throw new Error("a detection file needs edgecnn.nms metadata; export it with 'edgecnn export MODEL --nms graph|host'");
  }
  const p = {
    placement: 'graph', score_threshold: 0.001, iou_threshold: 0.55, topk_candidates: 300, detections_per_image: 300,
    ...JSON.parse(raw),
  };
  if (p.placement !== 'graph' && p.placement !== 'host') {
    throw new Error(`edgecnn.nms placement '${p.placement}': expected graph or host`);
  }
  return p;
}

/** edgecnn.outputs -> {role: output name}; a role it does not name is the output of the same name. */
export function outputRoles(meta) {
  const get = (k) => meta[`edgecnn.${k}`];
  const roles = {};
  for (const o of get('outputs') ? JSON.parse(get('outputs')) : []) if (o.name && o.role) roles[o.role] = o.name;
  return roles;
}

const f32 = Math.fround;

/** Detections [{box, score, label}] sorted by decreasing score, stable on ties, at most k. */
function best(dets, k) {
  return dets.map((d, i) => [d, i]).sort((a, b) => b[0].score - a[0].score || a[1] - b[1]).slice(0, k).map((e) => e[0]);
}

/** torchvision's SSD.postprocess_detections for one image: boxes (A x 4) and scores (A x C, class 0 the background),
 * flat arrays. Per class: scores > score_threshold, the best topk_candidates (stable on ties, as torchvision's CPU
 * nms kernel sorts), greedy NMS at iou_threshold in float32; then the best detections_per_image of all classes. */
export function hostNms(boxes, scores, anchors, classes, p) {
  const thr = f32(p.iou_threshold);
  const minScore = f32(p.score_threshold);
  const kept = [];
  for (let c = 1; c < classes; c++) {
    const cand = [];
    for (let a = 0; a < anchors; a++) {
      const v = scores[a * classes + c];
      if (v > minScore) cand.push([v, a]);
    }
    cand.sort((x, y) => y[0] - x[0] || x[1] - y[1]);
    cand.length = Math.min(cand.length, p.topk_candidates);
    const removed = new Uint8Array(cand.length);
    for (let i = 0; i < cand.length; i++) {
      if (removed[i]) continue;
      const a = boxes.slice(cand[i][1] * 4, cand[i][1] * 4 + 4);
      kept.push({ box: Array.from(a), score: cand[i][0], label: c });
      const areaA = f32(f32(a[2] - a[0]) * f32(a[3] - a[1]));
      for (let j = i + 1; j < cand.length; j++) {
        if (removed[j]) continue;
        const o = cand[j][1] * 4;
        const b = [boxes[o], boxes[o + 1], boxes[o + 2], boxes[o + 3]];
        const w = Math.max(f32(Math.min(a[2], b[2]) - Math.max(a[0], b[0])), 0);
        const h = Math.max(f32(Math.min(a[3], b[3]) - Math.max(a[1], b[1])), 0);
        const inter = f32(w * h);
        const union = f32(f32(areaA + f32(f32(b[2] - b[0]) * f32(b[3] - b[1]))) - inter);
        if (inter > f32(thr * union)) removed[j] = 1;
      }
    }
  }
  return best(kept, p.detections_per_image);
}

/** NMS in the graph: the kept detections of the batch -> image `image`'s, best first, at most detections_per_image. */
export function graphDetections(boxes, scores, labels, batchIndex, image, p) {
  const dets = [];
  for (let i = 0; i < scores.length; i++) {
    if (Number(batchIndex[i]) === image) {
      dets.push({ box: Array.from(boxes.slice(4 * i, 4 * i + 4)), score: scores[i], label: Number(labels[i]) });
    }
  }
  return best(dets, p.detections_per_image);
}

/** Boxes from input pixels (height x width) to an image of imageWidth x imageHeight pixels (a stretch resize). */
export function toImage(dets, height, width, imageWidth, imageHeight) {
  const sx = f32(imageWidth / width);
  const sy = f32(imageHeight / height);
  return dets.map((d) => ({ ...d, box: [f32(d.box[0] * sx), f32(d.box[1] * sy), f32(d.box[2] * sx), f32(d.box[3] * sy)] }));
}

/** Per-pixel class scores of one image (C x H x W, flat) -> each class's share of the pixels (argmax, first on ties). */
export function pixelShares(masks, classes, height, width) {
  const plane = height * width;
  const counts = new Array(classes).fill(0);
  for (let px = 0; px < plane; px++) {
    let arg = 0;
    for (let c = 1; c < classes; c++) if (masks[c * plane + px] > masks[arg * plane + px]) arg = c;
    counts[arg]++;
  }
  return counts.map((n) => n / Math.max(plane, 1));
}
