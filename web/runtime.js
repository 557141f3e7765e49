// An explicit-state streaming .tflite run frame by frame in LiteRT.js (WebAssembly, XNNPACK):
// the page's twin of tsm_keras.export.runtime.StreamRunner. LiteRT.js's Tensor class knows
// float32, int32 and uint8 only, so the runner drives LiteRT's Wasm bindings directly
// (LiteRt.liteRtWasm: loadModel, compileModel, TensorBuffer), which take any element type;
// each output buffer named like a buffer input is fed back unchanged at the next step.

import { loadLiteRt } from "@litertjs/core";
import { FRAME, LOGITS, ModelError, readSignatures, STEP, streamStateSignature } from "./tflite_model.js";

let liteRtPromise = null;

/** LiteRT.js, loaded once from `wasmDir` (served by the page itself, not a CDN). */
export function liteRt(wasmDir) {
  liteRtPromise ??= loadLiteRt(wasmDir);
  return liteRtPromise;
}

export class StreamRunner {
  /** Use `await StreamRunner.open(bytes, name, wasmDir)`. */
  constructor(lite, bytes, name, step) {
    this.wasm = lite.liteRtWasm;
    this.env = lite.getDefaultEnvironment().liteRtEnvironment;
    this.name = name;
    this.step = step;
    this.frameInfo = step.inputs[FRAME];
    this.logitsInfo = step.outputs[LOGITS];
    this.inputSize = this.frameInfo.shape[1];
    this.numClasses = this.logitsInfo.shape[1];
    this.stateNames = Object.keys(step.inputs).filter((k) => k !== FRAME);
    this.pointer = this.wasm._malloc(bytes.byteLength);
    this.wasm.HEAPU8.set(bytes, this.pointer);
    this.model = this.wasm.loadModel(this.env, this.pointer, bytes.byteLength);
    this.states = null;
  }

  static async open(bytes, name, wasmDir) {
    const step = streamStateSignature(readSignatures(bytes), name);
    const runner = new StreamRunner(await liteRt(wasmDir), bytes, name, step);
    await runner.compile();
    return runner;
  }

  async compile() {
    const count = this.model.getNumSignatures();
    this.signatureIndex = -1;
    for (let i = 0; i < count; i++) {
      const signature = this.model.getSignature(i);
      if (signature.key() === STEP) {
        this.signatureIndex = i;
        this.inputNames = vectorToArray(signature.inputNames());
        this.outputNames = vectorToArray(signature.outputNames());
      }
      signature.delete();
    }
    if (this.signatureIndex < 0) throw new ModelError(`${this.name}: LiteRT.js finds no signature 'step'`);
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
