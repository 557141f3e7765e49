// The page: pick a model, a source (camera or video file), classify each new frame.
// window.tsm is the hook the tests drive (tests/web/): raw frames in, logits out.

import { StreamRunner } from "./runtime.js";
import { DEFAULT_WINDOW, FrameSizeError, prepareFrame, StreamingClassifier } from "./stream_app.js";

const WASM_DIR = new URL("./node_modules/@litertjs/core/wasm/", import.meta.url).href;
const MODELS = new URL("./model/", location.href); // RUN/tflite/ and models.json, served by tflite/serve.py
const PREFERRED = ["stream_state_int8.tflite", "stream_state_float32.tflite"];
const HISTORY = 1000; // steps kept for the test hook

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const video = $("video");
const canvas = document.createElement("canvas");
const context = canvas.getContext("2d", { willReadFrequently: true });

const app = {
  models: [], // models.json: each .tflite's name, kind, precision and signatures
  view: null, // models.json's "preprocessing": the run's view (resize_short_side, center_crop)
  classifier: null,
  model: null,
  stream: null,
  objectUrl: null,
  generation: 0, // bumped by every new source: a stale frame loop stops
  loads: 0, // bumped by every model load: a slower earlier load is dropped
  busy: false,
  lastRun: null, // presented-frame count of the last frame the model saw
  firstRun: null, // ... and of the first one since the reset
  latencies: [],
  history: [],
  record: Number(params.get("record") ?? 0), // keep the RGBA of this many frames (tests)
};

function say(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

/** The window or stride box: an integer >= 1, else an Error that says so. */
function setting(name) {
  const text = $(name).value;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be an integer >= 1, not '${text}'`);
  return value;
}

async function fetchOk(url, what) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status} for ${url}`);
  return response;
}

async function loadModel(name) {
  const load = ++app.loads;
  app.classifier?.runner.delete();
  app.classifier = null;
  app.model = name;
  const url = new URL(name, MODELS);
  say(`Loading ${name}…`);
  try {
    const model = app.models.find((entry) => entry.name === name);
    if (!model) throw new Error(`${name}: not in the run's models.json (reload the page)`);
    const bytes = new Uint8Array(await (await fetchOk(url, name)).arrayBuffer());
    const runner = await StreamRunner.open(bytes, model, WASM_DIR);
    const labelsUrl = new URL("labels.txt", url);
    const text = await (await fetchOk(labelsUrl, "labels.txt beside the model")).text();
    if (load !== app.loads) {
      runner.delete(); // another model was picked meanwhile
      return;
    }
    const labels = text.split("\n").map((line) => line.trim()).filter(Boolean);
    if (labels.length !== runner.numClasses) {
      runner.delete();
      const counts = `${labels.length} class names for a model with ${runner.numClasses} outputs`;
      throw new Error(`${labelsUrl.pathname}: ${counts}`);
    }
    app.classifier = new StreamingClassifier(runner, labels, setting("window"));
    restart();
    const frame = runner.frameInfo;
    say(
      `${name}: ${frame.dtype}, input ${runner.inputSize}x${runner.inputSize}, ` +
        `${runner.numClasses} classes, ${runner.stateNames.length} buffers. ` +
        (video.srcObject || video.src ? "Classifying." : "Pick the camera or a video file."),
    );
  } catch (error) {
    if (load === app.loads) say(`error: ${error.message ?? error}`, true);
    throw error;
  }
}

/** Zero buffers and an empty window: on request, for a new source and a new model. */
function restart() {
  app.classifier?.reset();
  app.lastRun = null;
  app.firstRun = null;
  app.latencies = [];
  $("label").textContent = "";
}

async function setSource({ stream = null, file = null }) {
  app.stream?.getTracks().forEach((track) => track.stop());
  if (app.objectUrl) URL.revokeObjectURL(app.objectUrl);
  app.stream = stream;
  app.sourceName = stream ? "camera" : file.name;
  app.objectUrl = file ? URL.createObjectURL(file) : null;
  video.srcObject = stream;
  if (file) video.src = app.objectUrl;
  else video.removeAttribute("src");
  restart();
  const generation = ++app.generation;
  await video.play();
  const schedule = () => {
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick);
    else requestAnimationFrame(() => tick(0, null));
  };
  let lastTime = -1;
  let count = 0;
  const tick = (_, meta) => {
    if (generation !== app.generation) return;
    // Without requestVideoFrameCallback, a new frame is a new currentTime.
    const fresh = !meta && video.currentTime !== lastTime;
    lastTime = video.currentTime;
    const presented = meta ? meta.presentedFrames : fresh ? ++count : null;
    if (presented !== null) onFrame(presented, generation);
    schedule();
  };
  schedule();
  if (app.classifier) say(`${app.model}: classifying ${stream ? "the camera" : file.name}.`);
}

async function onFrame(presented, generation) {
  const classifier = app.classifier;
  if (!classifier) return;
  if (app.busy) return; // the model is still on the previous frame: this one is not seen
  let stride;
  try {
    stride = setting("stride");
  } catch (error) {
    say(`error: ${error.message}`, true); // shown until the box holds a good value
    return;
  }
  if (app.lastRun !== null && presented - app.lastRun < stride) return;
  app.busy = true;
  try {
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (!width || !height) return;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    context.drawImage(video, 0, 0, width, height);
    const image = context.getImageData(0, 0, width, height);
    const size = classifier.runner.inputSize;
    const rgb = prepareFrame(image.data, width, height, size, app.view?.resize_short_side ?? size);
    const prediction = await classifier.update(rgb);
    if (generation !== app.generation || classifier !== app.classifier) return;
    app.lastRun = presented;
    app.firstRun ??= presented;
    const entry = { ...summary(prediction), source: app.sourceName, presented, width, height };
    if (app.history.length < app.record) entry.image = base64(image.data);
    remember(entry);
    show(prediction, width, height);
  } catch (error) {
    const what = error instanceof FrameSizeError ? "" : "error: ";
    say(`${what}${error.message ?? error}`, true);
    app.generation += 1; // stop this source: the same error would repeat on every frame
    video.pause();
  } finally {
    app.busy = false;
  }
}

function summary(prediction) {
  const { frame, label, score, ms } = prediction;
  return { frame, label, score, ms, raw: Array.from(prediction.raw), logits: Array.from(prediction.logits) };
}

function remember(entry) {
  app.history.push(entry);
  if (app.history.length > HISTORY) app.history.shift();
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function show(prediction, width, height) {
  $("label").textContent = `${prediction.label} ${prediction.score.toFixed(2)}`;
  const order = prediction.scores.map((_, k) => k).sort((a, b) => prediction.scores[b] - prediction.scores[a]);
  $("top").replaceChildren(
    ...order.slice(0, 5).map((k) => {
      const item = document.createElement("li");
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.round(100 * prediction.scores[k])}%`;
      item.append(`${app.classifier.classNames[k]} ${prediction.scores[k].toFixed(3)}`, bar);
      return item;
    }),
  );
  app.latencies.push(prediction.ms);
  if (app.latencies.length > 30) app.latencies.shift();
  const mean = app.latencies.reduce((a, b) => a + b, 0) / app.latencies.length;
  $("latency").textContent =
    `model step ${prediction.ms.toFixed(1)} ms ` + `(mean ${mean.toFixed(1)} ms over the last ${app.latencies.length})`;
  $("frames").textContent =
    `${prediction.frame + 1} frames classified of the ${app.lastRun - app.firstRun + 1} the video showed ` +
    `since the reset (stride ${$("stride").value}; a busy page or browser misses some) · video ${width}x${height}`;
}

async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    say(
      `The camera needs a secure page, and ${location.origin} is not one: open the page as https://… ` +
        "or on http://localhost (docs/web.md says how on a phone). A video file works on any page.",
      true,
    );
    return;
  }
  let stream;
  try {
    const rear = { facingMode: { ideal: "environment" } }; // a phone's rear camera, where there is one
    stream = await navigator.mediaDevices.getUserMedia({ video: rear, audio: false });
  } catch (error) {
    const reasons = {
      NotAllowedError:
        "No camera permission: the browser refused the camera (NotAllowedError). Allow the camera for " +
        "this site in the browser's settings and press Camera again, or open a video file.",
      SecurityError: "No camera permission: the browser blocks the camera on this page (SecurityError).",
      NotFoundError: "No camera found (NotFoundError): open a video file instead.",
      NotReadableError: "The camera could not be started (NotReadableError): another program may be using it.",
    };
    say(reasons[error.name] ?? `The camera could not be opened: ${error.name}: ${error.message}`, true);
    return;
  }
  await setSource({ stream });
}

async function init() {
  $("window").value = params.get("window") ?? DEFAULT_WINDOW;
  $("stride").value = params.get("stride") ?? 1;
  let listing;
  try {
    listing = await (await fetchOk(new URL("models.json", MODELS), "the run's model list")).json();
  } catch (error) {
    say(`error: ${error.message}. Start the page with: python tflite/serve.py RUN`, true);
    throw error;
  }
  $("run").textContent = listing.run;
  app.models = listing.models;
  app.view = listing.preprocessing; // null (no report.json): the whole centre square
  const names = app.models.map((model) => model.name);
  const select = $("model");
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  const chosen = params.get("model") ?? PREFERRED.find((name) => names.includes(name)) ?? names[0];
  if (!chosen) {
    say(`error: ${listing.run}/tflite holds no .tflite file: run python tflite/convert.py RUN --int8`, true);
    return;
  }
  select.value = chosen;
  await loadModel(chosen);
}

$("model").addEventListener("change", (event) => loadModel(event.target.value).catch(() => {}));
$("camera").addEventListener("click", () => openCamera());
$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) setSource({ file }).catch((error) => say(`error: ${file.name}: ${error.message}`, true));
});
$("reset").addEventListener("click", () => {
  restart();
  say(`${app.model}: reset (zero buffers, empty window).`);
});
$("window").addEventListener("change", () => {
  if (!app.classifier) return;
  try {
    const { runner, classNames } = app.classifier;
    app.classifier = new StreamingClassifier(runner, classNames, setting("window"));
    restart();
    say(`${app.model}: window ${setting("window")}, reset.`);
  } catch (error) {
    say(`error: ${error.message}`, true);
  }
});
video.addEventListener("ended", () => {
  if (app.classifier) say(`End of the video: ${app.classifier.frames} frames classified since the last reset.`);
});

const ready = init();
ready.catch(() => {});

// The hook for tests and the console: raw frames go through the same classifier as video.
window.tsm = {
  ready,
  loadModel,
  reset: restart,
  async stepRaw(values) {
    return summary(await app.classifier.update(Uint8Array.from(values)));
  },
  prepareFrame: (values, width, height, size, resize) =>
    Array.from(prepareFrame(Uint8Array.from(values), width, height, size, resize)),
  info() {
    const runner = app.classifier?.runner;
    if (!runner) return null;
    return { name: runner.name, inputSize: runner.inputSize, numClasses: runner.numClasses, step: runner.step };
  },
  history: () => app.history,
  message: () => $("message").textContent,
  openCamera,
};
