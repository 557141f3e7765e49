// An explicit-state streaming .tflite run frame by frame in LiteRT.js (WebAssembly, XNNPACK):
// the page's twin of tsm_keras.export.runtime.StreamRunner.
//
// Why LiteRT's Wasm bindings (LiteRt.liteRtWasm: loadModel, compileModel, TensorBuffer) and
// not LiteRT.js's high-level API (loadAndCompile, Tensor, getInputDetails): in @litertjs/core
// 2.5.3 that API knows float32, int32 and uint8 only (its DATATYPES), so an int8 model's
// tensors and even its getInputDetails() throw "Element type INT8 is not supported", and it
// gives no quantization at all. The bindings take any element type; they tell the signature,
// its input and output names, element types and shapes. Quantization (scale and zero point),
// and the model's kind, come from models.json, which tflite/serve.py reads with ai_edge_litert.
// Each output buffer named like a buffer input is fed back unchanged at the next step.

import { loadLiteRt } from "@litertjs/core";

// Names of tsm_keras's models (tsm_keras.streaming and tsm_keras.export.kinds).
export const FRAME = "frame";
export const LOGITS = "logits";
const STEP = "step";
const CLIP_INPUT = "clip";
// LiteRT element types the page runs (values of ElementType in @litertjs/core's index.d.ts).
const ELEMENT_TYPES = { 1: "float32", 9: "int8" };

/** A model the page cannot run; `message` says which file and what to pick instead. */
export class ModelError extends Error {}

/** Nothing, or a ModelError naming the file and what to pick, for a models.json entry whose
 * kind (tsm_keras.export.runtime.kind_of, found by tflite/serve.py) the page cannot run. */
export function checkKind(model) {
  const pick = "pick stream_state_float32.tflite or stream_state_int8.tflite written by tflite/convert.py";
  if (model.kind === "stream_state") return;
  if (model.kind === "stream") {
    throw new ModelError(
      `${model.name}: a streaming model that keeps its buffers in resource variables (signatures ` +
        `'step' and 'reset', a stream_*.tflite); the page feeds the buffers itself: ${pick}`,
    );
  }
  if (model.kind === "clip") {
    const shape = JSON.stringify(Object.values(model.signatures)[0].inputs[CLIP_INPUT].shape);
    throw new ModelError(`${model.name}: a clip model (input 'clip' ${shape}), not a streaming model: ${pick}`);
  }
  throw new ModelError(`${model.error ?? `${model.name}: a model of kind ${model.kind}`}: ${pick}`);
}

let liteRtPromise = null;

/** LiteRT.js, loaded once from `wasmDir` (served by the page itself, not a CDN). */
export function liteRt(wasmDir) {
  liteRtPromise ??= loadLiteRt(wasmDir);
  return liteRtPromise;
}

export class StreamRunner {
  /** Use `await StreamRunner.open(bytes, model, wasmDir)`. */
  constructor(lite, bytes, model) {
    this.wasm = lite.liteRtWasm;
    this.env = lite.getDefaultEnvironment().liteRtEnvironment;
    this.name = model.name;
    this.pointer = this.wasm._malloc(bytes.byteLength);
    this.wasm.HEAPU8.set(bytes, this.pointer);
    this.model = this.wasm.loadModel(this.env, this.pointer, bytes.byteLength);
    this.states = null;
  }

  /** The runner of `bytes`, the .tflite of `model` (its models.json entry), or a ModelError. */
  static async open(bytes, model, wasmDir) {
    checkKind(model);
    const runner = new StreamRunner(await liteRt(wasmDir), bytes, model);
    try {
      runner.describe(model);
      await runner.compile();
    } catch (error) {
      runner.delete();
      throw error;
    }
    return runner;
  }

  // The step signature from LiteRT.js: `this.step = {inputs, outputs}`, each `{name: {name,
  // shape, dtype, scale, zeroPoint}}` (scale 0 when not quantized, from models.json).
  describe(model) {
    this.signatureIndex = -1;
    for (let i = 0; i < this.model.getNumSignatures(); i++) {
      const signature = this.model.getSignature(i);
      if (signature.key() === STEP) {
        this.signatureIndex = i;
        this.inputNames = vectorToArray(signature.inputNames());
        this.outputNames = vectorToArray(signature.outputNames());
      }
      signature.delete();
    }
    if (this.signatureIndex < 0) throw new ModelError(`${this.name}: LiteRT.js finds no signature 'step'`);
    const listed = model.signatures[STEP];
    const tensors = (names, side, typeOf) =>
      Object.fromEntries(
        names.map((name, i) => {
          const quantization = listed?.[side][name]?.quantization;
          if (!quantization) {
            throw new ModelError(`${this.name}: models.json has no ${side.slice(0, -1)} '${name}': reload the page`);
          }
          const type = typeOf.call(this.model, this.signatureIndex, i);
          const layout = type.layout();
          const shape = vectorToArray(layout.dimensions());
          const code = type.elementType().value;
          layout.delete();
          type.delete();
          const dtype = ELEMENT_TYPES[code] ?? `element type ${code}`;
          return [name, { name, shape, dtype, scale: quantization[0], zeroPoint: quantization[1] }];
        }),
      );
    const step = {
      inputs: tensors(this.inputNames, "inputs", this.model.getInputTensorType),
      outputs: tensors(this.outputNames, "outputs", this.model.getOutputTensorType),
    };
    checkStep(step, this.name);
    this.step = step;
    this.frameInfo = step.inputs[FRAME];
    this.logitsInfo = step.outputs[LOGITS];
    this.inputSize = this.frameInfo.shape[1];
    this.numClasses = this.logitsInfo.shape[1];
    this.stateNames = this.inputNames.filter((k) => k !== FRAME);
  }

  async compile() {
    const options = { accelerator: "wasm", cpuOptions: { numThreads: 1 }, gpuOptions: {}, webNNOptions: {} };
    this.compiled = await this.wasm.compileModel(this.env, this.model, options);
    this.frameBuffer = this.buffer(this.inputNames.indexOf(FRAME));
    this.reset();
  }

  // A host-memory buffer of the type of input `index` of the step signature.
  buffer(index) {
    const type = this.model.getInputTensorType(this.signatureIndex, index);
    const buffer = this.wasm.LiteRtTensorBuffer.createManaged(
      this.env,
      this.wasm.LiteRtTensorBufferType.HOST_MEMORY,
      type,
      type.bytes(),
    );
    type.delete();
    return buffer;
  }

  write(buffer, typed) {
    const at = buffer.lock(this.wasm.LiteRtTensorBufferLockMode.WRITE);
    try {
      this.wasm.HEAPU8.set(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength), at);
    } finally {
      buffer.unlock();
    }
  }

  read(buffer, dtype) {
    const at = buffer.lock(this.wasm.LiteRtTensorBufferLockMode.READ);
    try {
      const bytes = this.wasm.HEAPU8.slice(at, at + buffer.packedSize());
      return dtype === "int8" ? new Int8Array(bytes.buffer) : new Float32Array(bytes.buffer);
    } finally {
      buffer.unlock();
    }
  }

  /** Zero buffers (an int8 buffer's real zero is its zero point): the next frame starts a video. */
  reset() {
    this.deleteStates();
    this.states = {};
    for (const name of this.stateNames) {
      const info = this.step.inputs[name];
      const count = info.shape.reduce((a, b) => a * b, 1);
      const zeros = info.dtype === "int8" ? new Int8Array(count).fill(info.zeroPoint) : new Float32Array(count);
      const buffer = this.buffer(this.inputNames.indexOf(name));
      this.write(buffer, zeros);
      this.states[name] = buffer;
    }
  }

  /** Logits (Float32Array, dequantized) of one frame: Uint8Array(S * S * 3) raw RGB. */
  async run(rgb) {
    const expected = this.inputSize * this.inputSize * 3;
    if (rgb.length !== expected) {
      throw new ModelError(`${this.name}: a frame of ${rgb.length} values for an input of ${expected}`);
    }
    const info = this.frameInfo;
    const frame = info.dtype === "int8" ? quantize(rgb, info.scale, info.zeroPoint) : Float32Array.from(rgb);
    this.write(this.frameBuffer, frame);
    const inputs = this.inputNames.map((name) => (name === FRAME ? this.frameBuffer : this.states[name]));
    const outputs = await this.compiled.run(this.signatureIndex, inputs);
    let logits = null;
    const next = {};
    this.outputNames.forEach((name, i) => {
      if (name === LOGITS) {
        const values = this.read(outputs[i], this.logitsInfo.dtype);
        logits =
          this.logitsInfo.dtype === "int8"
            ? dequantize(values, this.logitsInfo.scale, this.logitsInfo.zeroPoint)
            : values;
        outputs[i].delete();
      } else if (name in this.states) {
        next[name] = outputs[i];
      } else {
        outputs[i].delete();
      }
    });
    this.deleteStates();
    this.states = next;
    return logits;
  }

  deleteStates() {
    for (const buffer of Object.values(this.states ?? {})) buffer.delete();
    this.states = null;
  }

  delete() {
    this.deleteStates();
    this.frameBuffer?.delete();
    this.compiled?.delete();
    this.model.delete();
    this.wasm._free(this.pointer);
  }
}

// The step signature's inputs and outputs are what the page feeds: a frame [1, S, S, 3],
// logits [1, K], float32 or int8, and every buffer input fed back from its output.
function checkStep(step, name) {
  const frame = step.inputs[FRAME];
  if (!frame) throw new ModelError(`${name}: no input '${FRAME}' in signature 'step'`);
  const [batch, height, width, channels] = frame.shape;
  if (frame.shape.length !== 4 || batch !== 1 || height !== width || channels !== 3) {
    throw new ModelError(`${name}: input 'frame' has shape ${JSON.stringify(frame.shape)}; expected [1, S, S, 3]`);
  }
  const logits = step.outputs[LOGITS];
  if (!logits || logits.shape.length !== 2) {
    throw new ModelError(`${name}: no output 'logits' of shape [1, K]`);
  }
  for (const [key, info] of Object.entries(step.inputs)) {
    if (!["float32", "int8"].includes(info.dtype)) {
      throw new ModelError(`${name}: input '${key}' is ${info.dtype}; the page runs float32 and int8 models`);
    }
    if (key !== FRAME && !(key in step.outputs)) {
      throw new ModelError(`${name}: buffer input '${key}' has no output of the same name to feed back`);
    }
  }
}

function vectorToArray(vector) {
  const out = [];
  for (let i = 0; i < vector.size(); i++) out.push(vector.get(i));
  vector.delete();
  return out;
}

// Round half to even, as OpenCV's cvRound (and NumPy's round).
export function roundEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Raw values -> an int8 tensor's values: round(v / scale + zero), halves to even, clipped. */
export function quantize(values, scale, zeroPoint) {
  const out = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    out[i] = Math.min(127, Math.max(-128, roundEven(values[i] / scale + zeroPoint)));
  }
  return out;
}

/** int8 values -> float32, (q - zero) * scale in float32 as tsm_keras.export.runtime does. */
export function dequantize(values, scale, zeroPoint) {
  const out = new Float32Array(values.length);
  const s = Math.fround(scale);
  for (let i = 0; i < values.length; i++) out[i] = Math.fround((values[i] - zeroPoint) * s);
  return out;
}
