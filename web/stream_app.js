// The page's twin of tsm_keras/streaming/app.py: each frame's centre square, resized with
// OpenCV's INTER_AREA rule, RGB; the streaming model's logits of this frame; their mean over
// the last `window` steps; the top class and its softmax score.

import { roundEven } from "./runtime.js";

export const DEFAULT_WINDOW = 12; // stream_app.DEFAULT_WINDOW

/** An input smaller than the model's: OpenCV would upscale it, the page refuses (below). */
export class FrameSizeError extends Error {}

// Source pixels and weights of each output pixel along one axis, for a shrink by
// `scale` = src / dst >= 1 (OpenCV's area table: whole pixels weigh 1 / scale, the cut
// pixels at both ends their covered fraction / scale).
function areaTable(src, dst) {
  const scale = src / dst;
  const table = [];
  for (let d = 0; d < dst; d++) {
    const start = d * scale;
    const end = start + scale;
    const first = Math.ceil(start);
    const last = Math.floor(end);
    const taps = [];
    if (first - start > 1e-3) taps.push([first - 1, Math.fround((first - start) / scale)]);
    for (let s = first; s < last; s++) taps.push([s, Math.fround(1 / scale)]);
    if (end - last > 1e-3 && last < src) taps.push([last, Math.fround(Math.min(end - last, 1) / scale)]);
    table.push(taps);
  }
  return table;
}

/**
 * An RGBA image (`data` of `width * height * 4` bytes, as canvas getImageData gives) -> the
 * model input: the centre square the run's view keeps (short side resized to `resize`, centre
 * `size` kept: a square of min(width, height) * size / resize pixels, rounded down as
 * tsm_keras/data/view.py's View.square does), resized to `size` x `size`, RGB,
 * Uint8Array(size * size * 3). Matches stream_app.prepare_frame (cv2.resize INTER_AREA) bit for
 * bit when shrinking: the weights and sums in float32 as OpenCV does, halves rounded to even,
 * and the exact 2x shrink with OpenCV's integer rule (sum + 2) >> 2. A square smaller than
 * `size` is refused.
 */
export function prepareFrame(data, width, height, size, resize = size) {
  const side = Math.floor((Math.min(width, height) * size) / resize);
  if (side < size) {
    throw new FrameSizeError(
      `the video is ${width}x${height}: its centre square (${side} px) is smaller than the model's ` +
        `input (${size} px). Use a camera or video of at least ${size}x${size}, or a model trained at ` +
        `${side} px or less (tflite/stream.py would upscale the frame; the page does not guess)`,
    );
  }
  const top = Math.floor((height - side) / 2);
  const left = Math.floor((width - side) / 2);
  const out = new Uint8Array(size * size * 3);
  if (side === 2 * size) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const p = ((top + 2 * y) * width + left + 2 * x) * 4;
        const q = p + width * 4;
        for (let c = 0; c < 3; c++) {
          const sum = data[p + c] + data[p + 4 + c] + data[q + c] + data[q + 4 + c];
          out[(y * size + x) * 3 + c] = (sum + 2) >> 2;
        }
      }
    }
    return out;
  }
  const table = areaTable(side, size);
  const row = new Float32Array(size * 3);
  const acc = new Float32Array(size * 3);
  for (let y = 0; y < size; y++) {
    acc.fill(0);
    for (const [sy, wy] of table[y]) {
      const base = ((top + sy) * width + left) * 4;
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (const [sx, wx] of table[x]) sum = Math.fround(sum + Math.fround(wx * data[base + sx * 4 + c]));
          row[x * 3 + c] = sum;
        }
      }
      for (let i = 0; i < acc.length; i++) acc[i] = Math.fround(acc[i] + Math.fround(wy * row[i]));
    }
    for (let i = 0; i < acc.length; i++) out[y * size * 3 + i] = Math.min(255, Math.max(0, roundEven(acc[i])));
  }
  return out;
}

/** Mean of the logits of the last `window` steps, in float32 as NumPy's mean over axis 0. */
export class Smoother {
  constructor(window = DEFAULT_WINDOW) {
    if (!Number.isInteger(window) || window < 1) {
      throw new Error(`\`window\` must be an integer >= 1. Received: window=${window}`);
    }
    this.window = window;
    this.recent = [];
  }
  add(logits) {
    this.recent.push(Float32Array.from(logits));
    if (this.recent.length > this.window) this.recent.shift();
    const mean = new Float32Array(logits.length);
    for (const row of this.recent) for (let k = 0; k < mean.length; k++) mean[k] = Math.fround(mean[k] + row[k]);
    for (let k = 0; k < mean.length; k++) mean[k] = Math.fround(mean[k] / this.recent.length);
    return mean;
  }
  reset() {
    this.recent = [];
  }
}

export function softmax(logits) {
  const max = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** A runner, its smoother and the class names: `await update(rgb)` -> prediction, as
 * stream_app.StreamingClassifier (`rgb` is the prepared Uint8Array(S * S * 3)). */
export class StreamingClassifier {
  constructor(runner, classNames, window = DEFAULT_WINDOW) {
    if (classNames.length !== runner.numClasses) {
      throw new Error(`${classNames.length} class names for a model with ${runner.numClasses} outputs`);
    }
    this.runner = runner;
    this.classNames = classNames;
    this.smoother = new Smoother(window);
    this.frames = 0;
  }

  /** A new video: zero buffers, empty smoothing window. */
  reset() {
    this.runner.reset();
    this.smoother.reset();
    this.frames = 0;
  }

  async update(rgb) {
    const start = performance.now();
    const raw = await this.runner.run(rgb);
    const ms = performance.now() - start;
    const logits = this.smoother.add(raw);
    let top = 0;
    for (let k = 1; k < logits.length; k++) if (logits[k] > logits[top]) top = k;
    const scores = softmax(logits);
    const prediction = { frame: this.frames, label: this.classNames[top], score: scores[top], scores, logits, raw, ms };
    this.frames += 1;
    return prediction;
  }
}
