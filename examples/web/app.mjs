// The edgecnn web page: load an .onnx file and an image, preprocess as the Python runtime does, run it on
// onnxruntime-web's wasm backend, show the top-5 and the latency.
//
// URL parameters (all optional): ?model=URL (default /model.onnx when the server has one), &image=URL
// (.ppm/.pgm/.png/.jpg or a float32 .raw tensor), &runs=N timed runs after the first (default 5),
// &threads=N. window.edgecnn holds {state: 'loading'|'ready'|'done'|'error', result, error} for scripts.
import * as ort from '/ort/ort.wasm.min.mjs';

import {
  classScores, configFromMetadata, fromHalfBits, fromRgba, inputDims, outputValues, preprocess, readOnnxMetadata, readPnm,
  toInputData, topk,
} from '/js/edgecnn.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const page = { state: 'loading', result: null, error: null };
window.edgecnn = page;

// Threads need SharedArrayBuffer, which browsers give only to cross-origin-isolated pages (COOP/COEP headers).
ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = self.crossOriginIsolated
  ? Number(params.get('threads')) || Math.min(4, navigator.hardwareConcurrency || 1) : 1;

let model = null; // {name, session, meta, cfg}
let labels = null;

function setStatus(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function fail(e) {
  page.state = 'error';
  page.error = String(e?.message ?? e).split('\n')[0];
  setStatus(`Error: ${page.error}`, true);
}

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot load ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function loadModel(bytes, name) {
  setStatus(`Loading ${name}…`);
  const meta = readOnnxMetadata(bytes);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const input = session.inputMetadata?.[0];
  const cfg = configFromMetadata(meta, input?.shape ?? [], input?.type ?? null); // refuses what it cannot honour
  if (cfg.task !== 'classification') { // the page draws no boxes or masks: examples/node runs such files
    throw new Error(`this page runs classifiers; the file's edgecnn.task is '${cfg.task}' (examples/node runs it)`);
  }
  model = { name, session, meta, cfg };
  labels = cfg.labels;
  if (!labels && (cfg.classNames === 'imagenet' || cfg.classNames === undefined)) {
    labels = await fetch('/data/imagenet_classes.txt').then((r) => (r.ok ? r.text() : ''))
      .then((t) => t.split('\n').filter(Boolean)).catch(() => null);
  }
  setStatus(`Model ${cfg.model || name} ready (${cfg.channels}×${cfg.height}×${cfg.width}). Choose an image.`);
}

// Any image file -> {width, height, channels, pixels}: PPM/PGM parsed here, others decoded by the browser.
async function decodeImage(bytes, name, type = '') {
  if (/\.(ppm|pgm)$/i.test(name) || (bytes[0] === 0x50 && (bytes[1] === 0x35 || bytes[1] === 0x36))) return readPnm(bytes);
  const bitmap = await createImageBitmap(new Blob([bytes], { type }), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  return fromRgba(ctx.getImageData(0, 0, bitmap.width, bitmap.height).data, bitmap.width, bitmap.height);
}

function showPreview(img) {
  const canvas = $('preview');
  if (!img) {
    canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
    return;
  }
  canvas.width = img.width;
  canvas.height = img.height;
  const rgba = new ImageData(img.width, img.height);
  for (let i = 0; i < img.width * img.height; i++) {
    for (let c = 0; c < 3; c++) rgba.data[i * 4 + c] = img.pixels[i * img.channels + (img.channels === 3 ? c : 0)];
    rgba.data[i * 4 + 3] = 255;
  }
  canvas.getContext('2d').putImageData(rgba, 0, 0);
}

async function classify(bytes, name, type) {
  if (!model) throw new Error('load a model first');
  const { cfg, session } = model;
  const count = cfg.channels * cfg.height * cfg.width;
  let x;
  const half = cfg.dtype === 'float16';
  if (/\.(raw|f32|bin)$/i.test(name)) {
    const want = count * (half ? 2 : 4);
    if (bytes.length !== want) throw new Error(`${name} has ${bytes.length} bytes; expected ${want} (${cfg.dtype} ${cfg.layout})`);
    x = half ? new Uint16Array(bytes.slice().buffer) : new Float32Array(bytes.slice().buffer);
    showPreview(null);
  } else {
    const img = await decodeImage(bytes, name, type);
    showPreview(img);
    x = toInputData(preprocess(img, cfg), cfg);
  }
  setStatus(`Running ${name}…`);
  const feeds = { [session.inputNames[0]]: new ort.Tensor(cfg.dtype, x, inputDims(cfg)) };
  const runs = Math.max(0, Number(params.get('runs') ?? 5));
  let t0 = performance.now();
  const out = await session.run(feeds);
  const firstMs = performance.now() - t0;
  const times = [];
  for (let i = 0; i < runs; i++) {
    t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const medianMs = times.length ? times[Math.floor(times.length / 2)] : firstMs;
  const logits = outputValues(out[session.outputNames[0]]);
  const scores = classScores(logits, cfg);
  const top = topk(scores, 5, labels && labels.length === scores.length ? labels : null);
  page.result = {
    image: name, top, logits, input: half ? Array.from(x, fromHalfBits) : Array.from(x), layout: cfg.layout,
    input_dtype: cfg.dtype, first_ms: firstMs, latency_ms: medianMs, runs,
    threads: ort.env.wasm.numThreads, cross_origin_isolated: self.crossOriginIsolated,
  };
  render(page.result);
  page.state = 'done';
  setStatus(`${name}: done.`);
}

function render(r) {
  const facts = {
    model: model.cfg.model || model.name,
    input: `${model.cfg.layout} ${model.cfg.dtype} ${model.cfg.channels}×${model.cfg.height}×${model.cfg.width}, `
      + `${model.cfg.bgr ? 'BGR' : 'RGB'}, ${model.cfg.crop === null ? 'no crop' : `crop ${model.cfg.crop}`}, `
      + `mean ${JSON.stringify(model.cfg.mean)}`,
    backend: `wasm, ${r.threads} thread${r.threads > 1 ? 's' : ''}${r.cross_origin_isolated ? ' (cross-origin isolated)' : ''}`,
    latency: `${r.latency_ms.toFixed(2)} ms (median of ${r.runs} runs; first run ${r.first_ms.toFixed(1)} ms)`,
  };
  $('facts').replaceChildren(...Object.entries(facts).flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = k;
    dd.textContent = v;
    return [dt, dd];
  }));
  const best = r.top[0].probability || 1;
  $('top5').tBodies[0].replaceChildren(...r.top.map((p) => {
    const tr = document.createElement('tr');
    const bar = `<div class="bar" style="width:${Math.max(1, Math.round((p.probability / best) * 120))}px"></div>`;
    tr.innerHTML = `<td>${p.rank}</td><td></td><td class="num">${p.probability.toFixed(4)}</td><td>${bar}</td>`;
    tr.children[1].textContent = p.label === String(p.index) ? p.label : `${p.label} (${p.index})`;
    return tr;
  }));
}

async function start() {
  const modelUrl = params.get('model') ?? '/model.onnx';
  const head = await fetch(modelUrl, { method: 'HEAD' }).catch(() => null);
  if (head?.ok) {
    await loadModel(await fetchBytes(modelUrl), modelUrl.split('/').pop());
  } else if (params.has('model')) {
    throw new Error(`cannot load ${modelUrl}: HTTP ${head?.status ?? 'error'}`);
  } else {
    setStatus('Choose an edgecnn .onnx model file.');
  }
  page.state = 'ready';
  const imageUrl = params.get('image');
  if (imageUrl && model) await classify(await fetchBytes(imageUrl), imageUrl.split('/').pop());
}

$('model-file').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (file) await loadModel(new Uint8Array(await file.arrayBuffer()), file.name).catch(fail);
});
$('image-file').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (file) await classify(new Uint8Array(await file.arrayBuffer()), file.name, file.type).catch(fail);
});
$('sample').addEventListener('click', async () => {
  await fetchBytes('/sample.ppm').then((b) => classify(b, 'sample.ppm')).catch(fail);
});

start().catch(fail);
