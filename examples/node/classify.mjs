#!/usr/bin/env node
// Run an edgecnn .onnx file with onnxruntime-node and print the top-k classes (or --json); for a detection file the
// boxes in the image's pixels (NMS in the graph, or here on the host), for a segmentation file each class's share of
// the pixels.
//
//   node classify.mjs MODEL.onnx IMAGE.ppm [--top 5] [--json] [--provider cpu|cuda] [--threads N]
//                     [--labels FILE] [--dump-input FILE] [--min-score 0.25]
//   node classify.mjs MODEL.onnx INPUT.raw ...     # a preprocessed tensor in the model's layout and input dtype
//                                                  # (.raw/.f32/.bin or --raw)
//
// Preprocessing comes from the file's edgecnn.* metadata (size, channels, mean/std, channel order, crop, layout,
// input dtype) and matches the Python runtime bit for bit (../js/edgecnn.mjs); a key it cannot honour (another
// task, letterbox) stops it at load. Errors print one line on stderr and exit with status 1 (2 for usage errors).
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import {
  classScores, configFromMetadata, graphDetections, hostNms, inputDims, nmsFromMetadata, outputRoles, outputValues,
  pixelShares, preprocess, readOnnxMetadata, readPnm, toImage, toInputData, topk,
} from '../js/edgecnn.mjs';

const USAGE = 'usage: node classify.mjs MODEL.onnx IMAGE.ppm|INPUT.raw [--top K] [--json] [--provider cpu|cuda] '
  + '[--threads N] [--labels FILE] [--raw] [--dump-input FILE] [--min-score S]';

class UsageError extends Error {}

function parse() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        top: { type: 'string', short: 'k', default: '5' },
        json: { type: 'boolean', default: false },
        raw: { type: 'boolean', default: false },
        provider: { type: 'string', default: 'cpu' },
        threads: { type: 'string', default: '0' },
        labels: { type: 'string' },
        'dump-input': { type: 'string' },
        'min-score': { type: 'string', default: '0.25' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(e.message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length !== 2) throw new UsageError('expected MODEL.onnx and one IMAGE or INPUT file');
  if (!['cpu', 'cuda'].includes(v.provider)) throw new UsageError(`--provider must be cpu or cuda, got '${v.provider}'`);
  const int = (name) => {
    if (!/^\d+$/.test(v[name])) throw new UsageError(`--${name} expects a non-negative integer, got '${v[name]}'`);
    return Number(v[name]);
  };
  const [model, input] = positionals;
  const minScore = Number(v['min-score']);
  if (v['min-score'] === '' || Number.isNaN(minScore)) throw new UsageError(`--min-score expects a number, got '${v['min-score']}'`);
  return {
    model, input, json: v.json, provider: v.provider, labels: v.labels, dumpInput: v['dump-input'],
    minScore, top: Math.max(1, int('top')), threads: int('threads'), raw: v.raw || /\.(raw|f32|bin)$/.test(input),
  };
}

function readFile(path, what) {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${what} not found or unreadable: ${path} (${e.code ?? e.message})`);
  }
}

async function main() {
  const args = parse();
  const ort = await import('onnxruntime-node');
  const modelBytes = readFile(args.model, 'model file');
  const meta = readOnnxMetadata(modelBytes);
  // logSeverityLevel 3: errors only, as the C++ example (ORT's load-time warnings would break the one-line contract)
  const options = { executionProviders: [args.provider], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (args.threads > 0) options.intraOpNumThreads = args.threads;
  let session;
  try {
    session = await ort.InferenceSession.create(modelBytes, options);
  } catch (e) {
    const hint = args.provider === 'cuda' ? ' (CUDA needs the linux-x64 GPU binaries of onnxruntime-node)' : '';
    throw new Error(`onnxruntime: ${String(e.message).split('\n')[0]}${hint}`);
  }
  const inputMeta = session.inputMetadata?.[0];
  const cfg = configFromMetadata(meta, inputMeta?.shape ?? [], inputMeta?.type ?? null);
  const count = cfg.channels * cfg.height * cfg.width;
  const bytesPer = cfg.dtype === 'float16' ? 2 : 4;
  let x;
  let image = { width: cfg.width, height: cfg.height }; // a raw tensor has no picture: boxes stay in input pixels
  if (args.raw) {
    const buf = readFile(args.input, 'input');
    if (buf.length !== count * bytesPer) {
      throw new Error(`raw input ${args.input} has ${buf.length} bytes; expected ${count * bytesPer} `
        + `(one ${cfg.dtype} ${cfg.layout} image of the model's input shape)`);
    }
    const copy = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    x = cfg.dtype === 'float16' ? new Uint16Array(copy) : new Float32Array(copy);
  } else {
    image = readPnm(readFile(args.input, 'image'));
    x = toInputData(preprocess(image, cfg), cfg);
  }
  if (args.dumpInput) writeFileSync(args.dumpInput, Buffer.from(x.buffer, x.byteOffset, x.byteLength));

  const feeds = { [session.inputNames[0]]: new ort.Tensor(cfg.dtype, x, inputDims(cfg)) };
  const t0 = performance.now();
  const results = await session.run(feeds);
  const ms = performance.now() - t0;
  if (cfg.task !== 'classification') {
    printTask(args, cfg, meta, results, session.outputNames, image, ms, ort);
    return;
  }
  const logits = outputValues(results[session.outputNames[0]]);
  const scores = classScores(logits, cfg);
  const names = args.labels ? readFile(args.labels, 'labels file').toString('utf8').split('\n').filter(Boolean)
    : cfg.labels;
  const top = topk(scores, args.top, names);
  if (args.json) {
    console.log(JSON.stringify({
      model: args.model, provider: args.provider, ort_version: ort.env.versions?.node ?? '', latency_ms: ms,
      layout: cfg.layout, input_dtype: cfg.dtype, top, logits,
    }));
  } else {
    console.log(`${args.input}  (${args.provider}, ${ms.toFixed(2)} ms)\nrank  probability  class`);
    for (const p of top) console.log(`${String(p.rank).padStart(4)}  ${p.probability.toFixed(4).padStart(11)}  ${p.label}`);
  }
}

function labelNames(args, cfg) {
  return args.labels ? readFile(args.labels, 'labels file').toString('utf8').split('\n').filter(Boolean) : cfg.labels;
}

/** Detection: boxes in the image's pixels; segmentation: each class's share of the pixels. */
function printTask(args, cfg, meta, results, outputNames, image, ms, ort) {
  const roles = outputRoles(meta);
  const output = (role) => {
    const name = roles[role] ?? role;
    if (results[name] !== undefined) return results[name];
    if (role === 'masks') return results[outputNames[0]];
    throw new Error(`the detection file has no output '${name}' (edgecnn.outputs)`);
  };
  const names = labelNames(args, cfg);
  const label = (i) => (names && names[i] !== undefined ? names[i] : String(i));
  const head = {
    model: args.model, task: cfg.task, provider: args.provider, ort_version: ort.env.versions?.node ?? '', latency_ms: ms,
    size: [image.width, image.height],
  };
  if (cfg.task === 'segmentation') {
    const masks = output('masks');
    if (masks.dims.length !== 4) throw new Error('expected per-pixel class scores (N, C, H, W)');
    const shares = pixelShares(outputValues(masks), masks.dims[1], masks.dims[2], masks.dims[3]);
    const classes = shares.map((share, index) => ({ index, label: label(index), share }))
      .sort((a, b) => b.share - a.share || a.index - b.index).filter((c) => c.share > 0);
    if (args.json) console.log(JSON.stringify({ ...head, classes }));
    else {
      console.log(`${args.input}  (segmentation, ${args.provider}, ${ms.toFixed(2)} ms)\nshare    class`);
      for (const c of classes) console.log(`${c.share.toFixed(4)}  ${c.label}`);
    }
    return;
  }
  const p = nmsFromMetadata(meta);
  let dets;
  if (p.placement === 'host') {
    const boxes = output('boxes');
    const scores = output('scores');
    if (boxes.dims.length !== 3 || scores.dims.length !== 3 || boxes.dims[1] !== scores.dims[1] || boxes.dims[2] !== 4) {
      throw new Error('host NMS expects boxes (N, A, 4) and scores (N, A, C)');
    }
    dets = hostNms(outputValues(boxes), outputValues(scores), scores.dims[1], scores.dims[2], p);
  } else {
    const scores = outputValues(output('scores'));
    dets = graphDetections(outputValues(output('boxes')), scores, output('labels').data, output('batch_index').data, 0, p);
  }
  dets = toImage(dets, cfg.height, cfg.width, image.width, image.height).filter((d) => d.score >= args.minScore)
    .map((d) => ({ index: d.label, label: label(d.label), score: d.score, box: d.box }));
  if (args.json) console.log(JSON.stringify({ ...head, nms: p.placement, detections: dets }));
  else {
    console.log(`${args.input}  (detection, ${args.provider}, ${ms.toFixed(2)} ms)\nscore   class  box (x1, y1, x2, y2)`);
    for (const d of dets) console.log(`${d.score.toFixed(4)}  ${d.label.padEnd(5)}  ${d.box.map((v) => v.toFixed(1)).join(' ')}`);
  }
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  if (e instanceof UsageError) console.error(USAGE);
  process.exit(e instanceof UsageError ? 2 : 1);
});
