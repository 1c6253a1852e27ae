// The GANimation editor, entirely in the browser: LiteRT.js runs the converted generator (model.tflite)
// on WebGPU where the browser offers an adapter, on wasm (the CPU, XNNPACK) otherwise.
//
// config.json (written by scripts/export_web.py) gives the model's image size S, the 17 AUs with their
// FACS names, and the presets. A photo is read once; the user places a square on the face; a slider
// release, a preset or a moved square runs the generator on the square's pixels resized to S x S and
// composes the result at the photo's resolution: attention * photo + (1 - attention) * colour (paper
// Eq. 1), with the S x S attention and colour maps enlarged to the square. Pixels outside the square are
// the photo's own, bit for bit. `window.editor` exposes the state for tests and benchmarks.
import {loadAndCompile, loadLiteRt, Tensor} from "@litertjs/core";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

class UserError extends Error {}

const state = {
  config: null, model: null, accelerator: null, adapter: "", precision: "fp32",
  photo: null, photoData: null, square: null, aus: null,
  lastInput: null, lastOutput: null, lastRunMs: NaN, lastEditMs: NaN, edits: 0, busy: Promise.resolve(),
};

function showStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// === The runtime ===

async function chooseAccelerator() {
  const asked = params.get("accelerator");
  if (asked === "wasm") return {accelerator: "wasm", adapter: ""};
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (adapter) {
    const info = adapter.info || {};
    return {accelerator: "webgpu", adapter: [info.vendor, info.architecture, info.description].filter(Boolean).join(" ")};
  }
  if (asked === "webgpu") throw new UserError("WebGPU was asked for (?accelerator=webgpu), but this browser offers no WebGPU adapter");
  return {accelerator: "wasm", adapter: ""};
}

async function loadModel() {
  state.config = await (await fetch("config.json")).json();
  state.precision = params.get("precision") || state.config.gpu_precision;
  // Threads need SharedArrayBuffer, which a cross-origin isolated page has (static_page.serve sends the
  // COOP/COEP headers); elsewhere LiteRT.js runs on one thread.
  const wanted = Number(params.get("threads")) || Math.min(navigator.hardwareConcurrency || 1, 4);
  state.threads = self.crossOriginIsolated ? wanted : 1;
  await loadLiteRt(new URL("vendor/litertjs/core/wasm/", location.href).href, {threads: state.threads > 1});
  let chosen = await chooseAccelerator();
  const modelUrl = new URL(state.config.model_file, location.href).href;
  try {
    state.model = await loadAndCompile(modelUrl, {accelerator: chosen.accelerator, gpuOptions: {precision: state.precision},
                                                  cpuOptions: {numThreads: state.threads}});
  } catch (error) {
    if (chosen.accelerator !== "webgpu" || params.get("accelerator") === "webgpu") throw error;
    console.warn("WebGPU compile failed, using wasm:", error);
    chosen = {accelerator: "wasm", adapter: ""};
    state.model = await loadAndCompile(modelUrl, {accelerator: "wasm", cpuOptions: {numThreads: state.threads}});
  }
  state.accelerator = chosen.accelerator;
  state.adapter = chosen.adapter;
  const badge = $("runtime");
  badge.className = `badge ${state.accelerator}`;
  badge.textContent = state.accelerator === "webgpu"
    ? `LiteRT.js on WebGPU (${state.adapter || "GPU"}, ${state.precision} arithmetic)`
    : `LiteRT.js on wasm (CPU, XNNPACK, ${state.threads} thread${state.threads > 1 ? "s" : ""})`;
}

async function toHost(tensor) {
  const host = tensor.accelerator === "wasm" ? tensor : await tensor.moveTo("wasm");
  const values = Float32Array.from(host.toTypedArray());
  host.delete();
  return values;
}

async function runModel(images, aus) {
  const size = state.config.image_size;
  let inputs = {images: new Tensor(images, [1, size, size, 3]), aus: new Tensor(aus, [1, aus.length])};
  if (state.accelerator === "webgpu") {
    inputs = {images: await inputs.images.moveTo("webgpu"), aus: await inputs.aus.moveTo("webgpu")};
  }
  const start = performance.now();
  const outputs = await state.model.run(inputs);
  const result = {};
  for (const name of ["images", "attention", "color"]) result[name] = await toHost(outputs[name]);
  state.lastRunMs = performance.now() - start;
  inputs.images.delete();
  inputs.aus.delete();
  return result;
}

// === The photo and the square ===

async function readPhoto(file) {
  if (!file.type.startsWith("image/")) {
    throw new UserError(`${file.name} is not an image (${file.type || "unknown type"}): choose a photo (PNG, JPEG or WebP).`);
  }
  try {
    return await createImageBitmap(file, {colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image"});
  } catch (error) {
    throw new UserError(`${file.name} could not be read as an image (${error.message}): choose a PNG, JPEG or WebP photo.`);
  }
}

function context(canvas) {
  return canvas.getContext("2d", {willReadFrequently: true, colorSpace: "srgb"});
}

function showPhoto(bitmap) {
  const canvas = $("photo");
  canvas.width = $("overlay").width = bitmap.width;
  canvas.height = $("overlay").height = bitmap.height;
  context(canvas).drawImage(bitmap, 0, 0);
  state.photo = bitmap;
  state.photoData = context(canvas).getImageData(0, 0, bitmap.width, bitmap.height);
  const size = state.config.image_size, shortSide = Math.min(bitmap.width, bitmap.height);
  const slider = $("square-size");
  slider.min = String(Math.min(size, shortSide));
  slider.max = String(shortSide);
  const side = Math.max(Math.min(size, shortSide), Math.round(0.6 * shortSide));
  setSquare(Math.round((bitmap.width - side) / 2), Math.round((bitmap.height - side) / 2), side);
}

function setSquare(x, y, side) {
  const {width, height} = state.photo;
  side = Math.max(1, Math.min(Math.round(side), width, height));
  x = Math.max(0, Math.min(Math.round(x), width - side));
  y = Math.max(0, Math.min(Math.round(y), height - side));
  state.square = {x, y, side};
  $("square-size").value = String(side);
  const overlay = context($("overlay"));
  overlay.clearRect(0, 0, width, height);
  overlay.lineWidth = Math.max(2, Math.round(side / 100));
  overlay.strokeStyle = "#00e0ff";
  overlay.strokeRect(x + 0.5, y + 0.5, side - 1, side - 1);
}

function dragSquare() {
  const overlay = $("overlay");
  let grab = null;
  const toPhoto = (event) => {
    const box = overlay.getBoundingClientRect();
    return [(event.clientX - box.left) * overlay.width / box.width, (event.clientY - box.top) * overlay.height / box.height];
  };
  overlay.addEventListener("pointerdown", (event) => {
    if (!state.square) return;
    const [px, py] = toPhoto(event);
    grab = [px - state.square.x, py - state.square.y];
    overlay.setPointerCapture(event.pointerId);
  });
  overlay.addEventListener("pointermove", (event) => {
    if (!grab) return;
    const [px, py] = toPhoto(event);
    setSquare(px - grab[0], py - grab[1], state.square.side);
  });
  overlay.addEventListener("pointerup", () => {
    if (grab) { grab = null; requestEdit(); }
  });
  $("square-size").addEventListener("input", (event) => {
    const {x, y, side} = state.square, next = Number(event.target.value);
    setSquare(x + (side - next) / 2, y + (side - next) / 2, next);
  });
  $("square-size").addEventListener("change", () => requestEdit());
}

// === The edit ===

function cropInput() {
  const size = state.config.image_size, {x, y, side} = state.square;
  const canvas = new OffscreenCanvas(size, size), ctx = canvas.getContext("2d", {willReadFrequently: true});
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage($("photo"), x, y, side, side, 0, 0, size, size);
  const rgba = ctx.getImageData(0, 0, size, size).data, images = new Float32Array(size * size * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    images[j] = rgba[i] / 255; images[j + 1] = rgba[i + 1] / 255; images[j + 2] = rgba[i + 2] / 255;
  }
  return images;
}

function enlarged(values, channels, side) {
  // An S x S map (channels 1 or 3, in [0, 1]) drawn smoothly onto side x side pixels.
  const size = state.config.image_size, small = new ImageData(size, size);
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) {
      small.data[4 * p + c] = Math.round(255 * Math.min(1, Math.max(0, values[channels * p + (channels === 3 ? c : 0)])));
    }
    small.data[4 * p + 3] = 255;
  }
  const source = new OffscreenCanvas(size, size);
  source.getContext("2d").putImageData(small, 0, 0);
  const target = new OffscreenCanvas(side, side), ctx = target.getContext("2d", {willReadFrequently: true});
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, size, size, 0, 0, side, side);
  return ctx.getImageData(0, 0, side, side).data;
}

function compose(output) {
  const {x, y, side} = state.square, photo = state.photoData, width = photo.width;
  const attention = enlarged(output.attention, 1, side), color = enlarged(output.color, 3, side);
  const edited = new ImageData(new Uint8ClampedArray(photo.data), width, photo.height);
  for (let row = 0; row < side; row++) {
    for (let column = 0; column < side; column++) {
      const p = 4 * ((y + row) * width + x + column), q = 4 * (row * side + column), a = attention[q] / 255;
      for (let c = 0; c < 3; c++) edited.data[p + c] = Math.round(a * photo.data[p + c] + (1 - a) * color[q + c]);
    }
  }
  const canvas = $("edited");
  canvas.width = width;
  canvas.height = photo.height;
  context(canvas).putImageData(edited, 0, 0);
  const size = state.config.image_size, map = $("attention");
  map.width = map.height = size;
  const image = new ImageData(size, size);
  for (let p = 0; p < size * size; p++) {
    image.data.fill(Math.round(255 * Math.min(1, Math.max(0, output.attention[p]))), 4 * p, 4 * p + 3);
    image.data[4 * p + 3] = 255;
  }
  context(map).putImageData(image, 0, 0);
}

async function edit() {
  const start = performance.now();
  const images = cropInput(), aus = Float32Array.from(state.aus);
  const output = await runModel(images, aus);
  compose(output);
  state.lastInput = {images, aus};
  state.lastOutput = output;
  state.lastEditMs = performance.now() - start;
  state.edits += 1;
  showStatus(`Edited in ${state.lastEditMs.toFixed(0)} ms (the generator ${state.lastRunMs.toFixed(0)} ms, ${state.accelerator}).`);
}

function requestEdit() {
  if (!state.photo || !state.model) return state.busy;
  state.busy = state.busy.then(edit).catch((error) => showStatus(`The edit failed: ${error.message}`, true));
  return state.busy;
}

// === The controls ===

function buildControls() {
  const {action_units: units, presets, slider_step: step} = state.config;
  state.aus = new Array(units.length).fill(0);
  const sliders = $("sliders");
  units.forEach((unit, index) => {
    const label = document.createElement("label");
    label.id = `au-${unit.name}`;
    label.innerHTML = `<span>${unit.name} ${unit.description}</span><input type="range" min="0" max="1" step="${step}" value="0"><output>0.00</output>`;
    const input = label.querySelector("input"), shown = label.querySelector("output");
    input.addEventListener("input", () => { state.aus[index] = Number(input.value); shown.textContent = Number(input.value).toFixed(2); });
    input.addEventListener("change", () => requestEdit());
    sliders.appendChild(label);
  });
  for (const [name, values] of Object.entries(presets)) {
    const button = document.createElement("button");
    button.textContent = name;
    button.id = `preset-${name}`;
    button.addEventListener("click", () => { setAus(values); requestEdit(); });
    $("presets").appendChild(button);
  }
}

function setAus(values) {
  state.aus = Array.from(values, Number);
  state.config.action_units.forEach((unit, index) => {
    const label = $(`au-${unit.name}`);
    label.querySelector("input").value = String(state.aus[index]);
    label.querySelector("output").textContent = state.aus[index].toFixed(2);
  });
}

async function onPhoto(file) {
  try {
    showPhoto(await readPhoto(file));
    showStatus("Editing…");
    await requestEdit();
  } catch (error) {
    showStatus(error instanceof UserError ? error.message : `The photo could not be shown: ${error.message}`, true);
  }
}

async function main() {
  try {
    await loadModel();
  } catch (error) {
    $("runtime").textContent = "The model could not be loaded";
    showStatus(`LiteRT.js could not load the model: ${error.message}`, true);
    throw error;
  }
  buildControls();
  dragSquare();
  $("photo-input").addEventListener("change", (event) => { if (event.target.files[0]) onPhoto(event.target.files[0]); });
  showStatus("Choose a photo.");
}

window.editor = {
  state,
  ready: main(),
  setSquare: (x, y, side) => { setSquare(x, y, side); return requestEdit(); },
  setAus: (values) => { setAus(values); return requestEdit(); },
  editedPng: () => $("edited").toDataURL("image/png"),
};
