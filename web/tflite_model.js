// What a .tflite holds, read from its FlatBuffer: signatures, tensor shapes, types and
// quantization. LiteRT.js exposes neither quantization nor int8 tensors in its high-level API,
// so the page reads them here (field numbers from LiteRT's schema.fbs).

const TYPES = { 0: "float32", 2: "int32", 3: "uint8", 9: "int8" };
export const FRAME = "frame";
export const LOGITS = "logits";
export const STEP = "step";
export const RESET = "reset";
export const CLIP_INPUT = "clip";

/** A model the page cannot run; `message` says which file and what to pick instead. */
export class ModelError extends Error {}

class Reader {
  constructor(bytes) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bytes = bytes;
  }
  u32(at) {
    return this.view.getUint32(at, true);
  }
  // Position of field `index` of the table at `table`, or 0 when the field is absent.
  field(table, index) {
    const vtable = table - this.view.getInt32(table, true);
    const slot = 4 + 2 * index;
    if (slot >= this.view.getUint16(vtable, true)) return 0;
    const offset = this.view.getUint16(vtable + slot, true);
    return offset ? table + offset : 0;
  }
  target(at) {
    return at + this.u32(at);
  }
  table(table, index) {
    const at = this.field(table, index);
    return at ? this.target(at) : 0;
  }
  vector(table, index) {
    const at = this.field(table, index);
    if (!at) return { start: 0, length: 0 };
    const vec = this.target(at);
    return { start: vec + 4, length: this.u32(vec) };
  }
  tables(table, index) {
    const { start, length } = this.vector(table, index);
    return Array.from({ length }, (_, i) => this.target(start + 4 * i));
  }
  string(table, index) {
    const at = this.field(table, index);
    if (!at) return "";
    const s = this.target(at);
    return new TextDecoder().decode(this.bytes.subarray(s + 4, s + 4 + this.u32(s)));
  }
  scalar(table, index, kind, fallback) {
    const at = this.field(table, index);
    if (!at) return fallback;
    return kind === "u8" ? this.view.getUint8(at) : this.view.getUint32(at, true);
  }
}

function tensorInfo(reader, tensor, name) {
  const { start, length } = reader.vector(tensor, 0);
  const shape = Array.from({ length }, (_, i) => reader.view.getInt32(start + 4 * i, true));
  const code = reader.scalar(tensor, 1, "u8", 0);
  let scale = 0;
  let zeroPoint = 0;
  const quant = reader.table(tensor, 4);
  if (quant) {
    const scales = reader.vector(quant, 2);
    const zeros = reader.vector(quant, 3);
    if (scales.length === 1) scale = reader.view.getFloat32(scales.start, true);
    if (zeros.length === 1) zeroPoint = Number(reader.view.getBigInt64(zeros.start, true));
  }
  return { name, shape, dtype: TYPES[code] ?? `type ${code}`, scale, zeroPoint };
}

/** Signatures of a .tflite: `{key: {inputs: {name: info}, outputs: {name: info}}}`, where
 * info is `{name, shape, dtype, scale, zeroPoint}` (scale 0 when not quantized). */
export function readSignatures(bytes) {
  const reader = new Reader(bytes);
  if (bytes.byteLength < 8 || new TextDecoder().decode(bytes.subarray(4, 8)) !== "TFL3") {
    throw new ModelError("not a .tflite file (no TFL3 identifier)");
  }
  const model = reader.target(0);
  const subgraphs = reader.tables(model, 2);
  const signatures = {};
  for (const signature of reader.tables(model, 7)) {
    const tensors = reader.tables(subgraphs[reader.scalar(signature, 4, "u32", 0)], 0);
    const maps = (index) => {
      const out = {};
      for (const map of reader.tables(signature, index)) {
        const name = reader.string(map, 0);
        out[name] = tensorInfo(reader, tensors[reader.scalar(map, 1, "u32", 0)], name);
      }
      return out;
    };
    signatures[reader.string(signature, 2)] = { inputs: maps(0), outputs: maps(1) };
  }
  return signatures;
}

/** The step signature of an explicit-state streaming model (stream_state_*.tflite), or a
 * ModelError naming `name` and saying which file to pick: the same kinds as
 * tsm_keras.export.runtime.kind_of. */
export function streamStateSignature(signatures, name) {
  const keys = Object.keys(signatures).sort();
  const pick = "pick stream_state_float32.tflite or stream_state_int8.tflite written by tflite/convert.py";
  if (keys.length === 2 && keys[0] === RESET && keys[1] === STEP) {
    throw new ModelError(
      `${name}: a streaming model that keeps its buffers in resource variables (signatures ` +
        `'step' and 'reset', a stream_*.tflite); the page feeds the buffers itself: ${pick}`,
    );
  }
  if (keys.length === 1) {
    const only = signatures[keys[0]];
    if (CLIP_INPUT in only.inputs) {
      const shape = JSON.stringify(only.inputs[CLIP_INPUT].shape);
      throw new ModelError(`${name}: a clip model (input 'clip' ${shape}), not a streaming model: ${pick}`);
    }
    if (keys[0] === STEP && FRAME in only.inputs) return checkStep(only, name);
  }
  throw new ModelError(
    `${name}: not a tsm_keras video model (signatures ${JSON.stringify(keys)}); expected a ` +
      `streaming model with signature 'step' and input 'frame': ${pick}`,
  );
}

function checkStep(step, name) {
  const frame = step.inputs[FRAME];
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
  return step;
}
