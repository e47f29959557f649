#!/usr/bin/env node
// Run an edgecnn .onnx file with onnxruntime-node and print the top-k classes (or --json).
//
//   node classify.mjs MODEL.onnx IMAGE.ppm [--top 5] [--json] [--provider cpu|cuda] [--threads N]
//                     [--labels FILE] [--dump-input FILE]
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
  classScores, configFromMetadata, inputDims, outputValues, preprocess, readOnnxMetadata, readPnm, toInputData, topk,
} from '../js/edgecnn.mjs';

const USAGE = 'usage: node classify.mjs MODEL.onnx IMAGE.ppm|INPUT.raw [--top K] [--json] [--provider cpu|cuda] '
  + '[--threads N] [--labels FILE] [--raw] [--dump-input FILE]';

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
  return {
    model, input, json: v.json, provider: v.provider, labels: v.labels, dumpInput: v['dump-input'],
    top: Math.max(1, int('top')), threads: int('threads'), raw: v.raw || /\.(raw|f32|bin)$/.test(input),
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
  const options = { executionProviders: [args.provider], graphOptimizationLevel: 'all' };
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
  if (args.raw) {
    const buf = readFile(args.input, 'input');
    if (buf.length !== count * bytesPer) {
      throw new Error(`raw input ${args.input} has ${buf.length} bytes; expected ${count * bytesPer} `
        + `(one ${cfg.dtype} ${cfg.layout} image of the model's input shape)`);
    }
    const copy = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    x = cfg.dtype === 'float16' ? new Uint16Array(copy) : new Float32Array(copy);
  } else {
    x = toInputData(preprocess(readPnm(readFile(args.input, 'image')), cfg), cfg);
  }
  if (args.dumpInput) writeFileSync(args.dumpInput, Buffer.from(x.buffer, x.byteOffset, x.byteLength));

  const feeds = { [session.inputNames[0]]: new ort.Tensor(cfg.dtype, x, inputDims(cfg)) };
  const t0 = performance.now();
  const results = await session.run(feeds);
  const ms = performance.now() - t0;
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

main().catch((e) => {
  console.error(`error: ${e.message}`);
  if (e instanceof UsageError) console.error(USAGE);
  process.exit(e instanceof UsageError ? 2 : 1);
});
