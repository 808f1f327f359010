// The graph builders for CLIP's text encoder and the VAE halves, and the shared 2-D layers, checked
// against a plain-TypeScript reference written straight from diffusers' / transformers' modules:
// each graph is built from seeded random weights of the test checkpoint's shapes, written with
// writeModel, run by onnxruntime and compared to float32 rounding.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxGraphBuilder } from "../server/engines/onnx/graph/onnx-graph-builder.ts";
import type { ModelWeights } from "../server/engines/onnx/graph/model-weights.ts";
import type { TextEncoderArchitecture, VaeArchitecture } from "../server/engines/onnx/graph/architecture.ts";
import { buildTextEncoderGraph } from "../server/engines/onnx/graph/text-encoder-graph.ts";
import { buildVaeEncoderGraph } from "../server/engines/onnx/graph/vae-encoder-graph.ts";
import { buildVaeDecoderGraph } from "../server/engines/onnx/graph/vae-decoder-graph.ts";
import { conv2d } from "../server/engines/onnx/graph/layers/conv2d.ts";
import { groupNorm } from "../server/engines/onnx/graph/layers/group-norm.ts";
import { linear } from "../server/engines/onnx/graph/layers/linear.ts";
import { layerNorm } from "../server/engines/onnx/graph/layers/layer-norm.ts";
import { gelu, quickGelu, silu } from "../server/engines/onnx/graph/layers/activations.ts";
import { resnetBlock2d } from "../server/engines/onnx/graph/layers/resnet-block.ts";
import { downsample2d, upsample2d } from "../server/engines/onnx/graph/layers/resample.ts";
import { createRandom } from "./fixtures/make-tiny-models.ts";
import { writeAndOpenGraph } from "./helpers/open-graph-session.ts";
import { RandomModelWeights } from "./helpers/random-model-weights.ts";

const { onnx } = onnxProto;

// ---------------------------------------------------------------------------------------------
// State-dict shapes of the test checkpoint's modules, named as diffusers / transformers name them.

type Shapes = Map<string, number[]>;

function addConv(shapes: Shapes, prefix: string, out: number, inp: number, k: number): void {
  shapes.set(`${prefix}.weight`, [out, inp, k, k]);
  shapes.set(`${prefix}.bias`, [out]);
}
function addNorm(shapes: Shapes, prefix: string, channels: number): void {
  shapes.set(`${prefix}.weight`, [channels]);
  shapes.set(`${prefix}.bias`, [channels]);
}
function addLinear(shapes: Shapes, prefix: string, out: number, inp: number): void {
  shapes.set(`${prefix}.weight`, [out, inp]);
  shapes.set(`${prefix}.bias`, [out]);
}
function addResnet(shapes: Shapes, prefix: string, inp: number, out: number, tembChannels?: number): void {
  addNorm(shapes, `${prefix}.norm1`, inp);
  addConv(shapes, `${prefix}.conv1`, out, inp, 3);
  if (tembChannels !== undefined) addLinear(shapes, `${prefix}.time_emb_proj`, out, tembChannels);
  addNorm(shapes, `${prefix}.norm2`, out);
  addConv(shapes, `${prefix}.conv2`, out, out, 3);
  if (inp !== out) addConv(shapes, `${prefix}.conv_shortcut`, out, inp, 1);
}
function addMidBlock(shapes: Shapes, prefix: string, channels: number): void {
  addResnet(shapes, `${prefix}.resnets.0`, channels, channels);
  addNorm(shapes, `${prefix}.attentions.0.group_norm`, channels);
  for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) addLinear(shapes, `${prefix}.attentions.0.${p}`, channels, channels);
  addResnet(shapes, `${prefix}.resnets.1`, channels, channels);
}

/** AutoencoderKL's state dict: Encoder, quant_conv, post_quant_conv, Decoder. */
function vaeShapes(arch: VaeArchitecture): Shapes {
  const shapes: Shapes = new Map();
  const blocks = arch.blockOutChannels;
  addConv(shapes, "encoder.conv_in", blocks[0], 3, 3);
  let channels = blocks[0];
  blocks.forEach((out, level) => {
    for (let i = 0; i < arch.layersPerBlock; i++) {
      addResnet(shapes, `encoder.down_blocks.${level}.resnets.${i}`, i === 0 ? channels : out, out);
    }
    channels = out;
    if (level < blocks.length - 1) addConv(shapes, `encoder.down_blocks.${level}.downsamplers.0.conv`, out, out, 3);
  });
  const top = blocks[blocks.length - 1];
  addMidBlock(shapes, "encoder.mid_block", top);
  addNorm(shapes, "encoder.conv_norm_out", top);
  addConv(shapes, "encoder.conv_out", 2 * arch.latentChannels, top, 3);
  addConv(shapes, "quant_conv", 2 * arch.latentChannels, 2 * arch.latentChannels, 1);
  addConv(shapes, "post_quant_conv", arch.latentChannels, arch.latentChannels, 1);
  addConv(shapes, "decoder.conv_in", top, arch.latentChannels, 3);
  addMidBlock(shapes, "decoder.mid_block", top);
  const reversed = [...blocks].reverse();
  channels = reversed[0];
  reversed.forEach((out, level) => {
    for (let i = 0; i < arch.layersPerBlock + 1; i++) {
      addResnet(shapes, `decoder.up_blocks.${level}.resnets.${i}`, i === 0 ? channels : out, out);
    }
    channels = out;
    if (level < blocks.length - 1) addConv(shapes, `decoder.up_blocks.${level}.upsamplers.0.conv`, out, out, 3);
  });
  addNorm(shapes, "decoder.conv_norm_out", blocks[0]);
  addConv(shapes, "decoder.conv_out", 3, blocks[0], 3);
  return shapes;
}

/** CLIPTextModel's state dict (transformers' names), position_ids buffer included as checkpoints carry it. */
function clipShapes(arch: TextEncoderArchitecture): Shapes {
  const shapes: Shapes = new Map();
  const h = arch.hiddenSize;
  shapes.set("text_model.embeddings.token_embedding.weight", [arch.vocabSize, h]);
  shapes.set("text_model.embeddings.position_embedding.weight", [arch.maxPositions, h]);
  shapes.set("text_model.embeddings.position_ids", [1, arch.maxPositions]);
  for (let l = 0; l < arch.layers; l++) {
    const p = `text_model.encoder.layers.${l}`;
    for (const proj of ["q_proj", "k_proj", "v_proj", "out_proj"]) addLinear(shapes, `${p}.self_attn.${proj}`, h, h);
    addNorm(shapes, `${p}.layer_norm1`, h);
    addLinear(shapes, `${p}.mlp.fc1`, arch.intermediateSize, h);
    addLinear(shapes, `${p}.mlp.fc2`, h, arch.intermediateSize);
    addNorm(shapes, `${p}.layer_norm2`, h);
  }
  addNorm(shapes, "text_model.final_layer_norm", h);
  return shapes;
}

const TINY_VAE: VaeArchitecture = {
  blockOutChannels: [32, 32, 64],
  layersPerBlock: 1,
  latentChannels: 4,
  normGroups: 32,
  sampleSize: 32,
  scalingFactor: 0.18215,
};

const TINY_CLIP: TextEncoderArchitecture = {
  vocabSize: 49_408,
  hiddenSize: 64,
  intermediateSize: 256,
  layers: 2,
  heads: 1,
  maxPositions: 77,
  layerNormEpsilon: 1e-5,
};

// ---------------------------------------------------------------------------------------------
// The plain reference: NCHW tensors as Float64Array, written straight from the PyTorch modules.

interface T {
  readonly data: Float64Array;
  readonly dims: readonly number[];
}

const tensor = (dims: readonly number[], data?: ArrayLike<number>): T => ({
  dims,
  data: data === undefined ? new Float64Array(dims.reduce((a, b) => a * b, 1)) : Float64Array.from(data),
});

function randomTensor(dims: readonly number[], seed: number): T {
  const random = createRandom(seed);
  const t = tensor(dims);
  for (let i = 0; i < t.data.length; i++) t.data[i] = random() * 2 - 1;
  return t;
}

function refConv(x: T, w: RandomModelWeights, prefix: string, stride = 1, pads?: readonly number[]): T {
  const [n, c, h, wd] = x.dims;
  const [o, ci, kh, kw] = w.shape(`${prefix}.weight`)!;
  expect(ci).toBe(c);
  const [pt, pl, pb, pr] = pads ?? [kh >> 1, kw >> 1, kh >> 1, kw >> 1];
  const oh = Math.floor((h + pt + pb - kh) / stride) + 1;
  const ow = Math.floor((wd + pl + pr - kw) / stride) + 1;
  const weight = w.values(`${prefix}.weight`);
  const bias = w.has(`${prefix}.bias`) ? w.values(`${prefix}.bias`) : undefined;
  const y = tensor([n, o, oh, ow]);
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          let sum = bias?.[oc] ?? 0;
          for (let ic = 0; ic < c; ic++)
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * stride + ky - pt;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * stride + kx - pl;
                if (ix < 0 || ix >= wd) continue;
                sum += weight[((oc * c + ic) * kh + ky) * kw + kx] * x.data[((b * c + ic) * h + iy) * wd + ix];
              }
            }
          y.data[((b * o + oc) * oh + oy) * ow + ox] = sum;
        }
  return y;
}

function refGroupNorm(x: T, w: RandomModelWeights, prefix: string, groups: number, eps: number): T {
  const [n, c] = x.dims;
  const spatial = x.data.length / (n * c);
  const per = (c / groups) * spatial;
  const gamma = w.values(`${prefix}.weight`);
  const beta = w.values(`${prefix}.bias`);
  const y = tensor(x.dims);
  for (let b = 0; b < n; b++)
    for (let gi = 0; gi < groups; gi++) {
      const start = (b * c + gi * (c / groups)) * spatial;
      let mean = 0;
      for (let i = 0; i < per; i++) mean += x.data[start + i];
      mean /= per;
      let variance = 0;
      for (let i = 0; i < per; i++) variance += (x.data[start + i] - mean) ** 2;
      variance /= per; // biased, as torch's GroupNorm
      const inv = 1 / Math.sqrt(variance + eps);
      for (let i = 0; i < per; i++) {
        const channel = gi * (c / groups) + Math.floor(i / spatial);
        y.data[start + i] = (x.data[start + i] - mean) * inv * gamma[channel] + beta[channel];
      }
    }
  return y;
}

const map = (x: T, f: (v: number) => number): T => tensor(x.dims, x.data.map(f));
const add = (a: T, b: T): T => tensor(a.dims, a.data.map((v, i) => v + b.data[i]));
const refSilu = (x: T): T => map(x, (v) => v / (1 + Math.exp(-v)));
const refQuickGelu = (x: T): T => map(x, (v) => v / (1 + Math.exp(-1.702 * v)));
function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse; a series/continued fraction to double precision.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = 0;
    let term = t;
    for (let k = 0; k < 100; k++) {
      sum += term / (2 * k + 1);
      term *= (-t * t) / (k + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let k = 60; k >= 1; k--) f = (k / 2) / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
}
const refGelu = (x: T): T => map(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));

/** x [..., in] · Wᵀ + b. */
function refLinear(x: T, w: RandomModelWeights, prefix: string): T {
  const [out, inp] = w.shape(`${prefix}.weight`)!;
  const weight = w.values(`${prefix}.weight`);
  const bias = w.has(`${prefix}.bias`) ? w.values(`${prefix}.bias`) : undefined;
  const rows = x.data.length / inp;
  const y = tensor([...x.dims.slice(0, -1), out]);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let sum = bias?.[o] ?? 0;
      for (let i = 0; i < inp; i++) sum += x.data[r * inp + i] * weight[o * inp + i];
      y.data[r * out + o] = sum;
    }
  return y;
}

function refLayerNorm(x: T, w: RandomModelWeights, prefix: string, eps: number): T {
  const width = x.dims[x.dims.length - 1];
  const gamma = w.values(`${prefix}.weight`);
  const beta = w.values(`${prefix}.bias`);
  const y = tensor(x.dims);
  for (let r = 0; r < x.data.length / width; r++) {
    const row = x.data.subarray(r * width, (r + 1) * width);
    const mean = row.reduce((a, b) => a + b, 0) / width;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / width;
    for (let i = 0; i < width; i++) y.data[r * width + i] = ((row[i] - mean) / Math.sqrt(variance + eps)) * gamma[i] + beta[i];
  }
  return y;
}

/** softmax(q kᵀ/√d) v per head on [N, S, C]; `causal` hides the keys after each query. */
function refAttention(q: T, k: T, v: T, heads: number, causal: boolean): T {
  const [n, s, c] = q.dims;
  const d = c / heads;
  const y = tensor(q.dims);
  const scores = new Float64Array(s);
  for (let b = 0; b < n; b++)
    for (let hd = 0; hd < heads; hd++)
      for (let i = 0; i < s; i++) {
        const keys = causal ? i + 1 : s;
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q.data[(b * s + i) * c + hd * d + e] * k.data[(b * s + j) * c + hd * d + e];
          scores[j] = dot / Math.sqrt(d);
          max = Math.max(max, scores[j]);
        }
        let total = 0;
        for (let j = 0; j < keys; j++) total += scores[j] = Math.exp(scores[j] - max);
        for (let e = 0; e < d; e++) {
          let sum = 0;
          for (let j = 0; j < keys; j++) sum += scores[j] * v.data[(b * s + j) * c + hd * d + e];
          y.data[(b * s + i) * c + hd * d + e] = sum / total;
        }
      }
  return y;
}

/** ResnetBlock2D; `temb` is the SiLU'd time embedding [N, temb_dim]. */
function refResnet(x: T, w: RandomModelWeights, prefix: string, groups: number, eps: number, temb?: T): T {
  let h = refConv(refSilu(refGroupNorm(x, w, `${prefix}.norm1`, groups, eps)), w, `${prefix}.conv1`);
  if (temb !== undefined) {
    const projected = refLinear(temb, w, `${prefix}.time_emb_proj`);
    const [n, c, hh, ww] = h.dims;
    h = tensor(h.dims, h.data.map((v, i) => v + projected.data[Math.floor(i / (c * hh * ww)) * c + (Math.floor(i / (hh * ww)) % c)]));
  }
  h = refConv(refSilu(refGroupNorm(h, w, `${prefix}.norm2`, groups, eps)), w, `${prefix}.conv2`);
  const shortcut = w.has(`${prefix}.conv_shortcut.weight`) ? refConv(x, w, `${prefix}.conv_shortcut`) : x;
  return add(shortcut, h);
}

/** NCHW → [N, HW, C] and back. */
function toTokens(x: T): T {
  const [n, c, h, w] = x.dims;
  const y = tensor([n, h * w, c]);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) y.data[(b * h * w + p) * c + ch] = x.data[(b * c + ch) * h * w + p];
  return y;
}
function fromTokens(t: T, like: readonly number[]): T {
  const [n, c, h, w] = like;
  const y = tensor(like);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) y.data[(b * c + ch) * h * w + p] = t.data[(b * h * w + p) * c + ch];
  return y;
}

function refVaeAttention(x: T, w: RandomModelWeights, prefix: string): T {
  const tokens = toTokens(refGroupNorm(x, w, `${prefix}.group_norm`, 32, 1e-6));
  const q = refLinear(tokens, w, `${prefix}.to_q`);
  const k = refLinear(tokens, w, `${prefix}.to_k`);
  const v = refLinear(tokens, w, `${prefix}.to_v`);
  const out = refLinear(refAttention(q, k, v, 1, false), w, `${prefix}.to_out.0`);
  return add(fromTokens(out, x.dims), x);
}

function refMidBlock(x: T, w: RandomModelWeights, prefix: string): T {
  let h = refResnet(x, w, `${prefix}.resnets.0`, 32, 1e-6);
  h = refVaeAttention(h, w, `${prefix}.attentions.0`);
  return refResnet(h, w, `${prefix}.resnets.1`, 32, 1e-6);
}

function refUpsampleNearest(x: T): T {
  const [n, c, h, wd] = x.dims;
  const y = tensor([n, c, 2 * h, 2 * wd]);
  for (let p = 0; p < n * c; p++)
    for (let oy = 0; oy < 2 * h; oy++)
      for (let ox = 0; ox < 2 * wd; ox++) y.data[(p * 2 * h + oy) * 2 * wd + ox] = x.data[(p * h + (oy >> 1)) * wd + (ox >> 1)];
  return y;
}

function refVaeEncoder(x: T, w: RandomModelWeights, arch: VaeArchitecture): T {
  let h = refConv(x, w, "encoder.conv_in");
  arch.blockOutChannels.forEach((_, level) => {
    for (let i = 0; i < arch.layersPerBlock; i++) h = refResnet(h, w, `encoder.down_blocks.${level}.resnets.${i}`, 32, 1e-6);
    if (level < arch.blockOutChannels.length - 1) {
      // Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a 3×3 stride-2 conv without padding.
      h = refConv(h, w, `encoder.down_blocks.${level}.downsamplers.0.conv`, 2, [0, 0, 1, 1]);
    }
  });
  h = refMidBlock(h, w, "encoder.mid_block");
  h = refConv(refSilu(refGroupNorm(h, w, "encoder.conv_norm_out", 32, 1e-6)), w, "encoder.conv_out");
  return refConv(h, w, "quant_conv");
}

function refVaeDecoder(z: T, w: RandomModelWeights, arch: VaeArchitecture): T {
  let h = refConv(refConv(z, w, "post_quant_conv"), w, "decoder.conv_in");
  h = refMidBlock(h, w, "decoder.mid_block");
  for (let level = 0; level < arch.blockOutChannels.length; level++) {
    for (let i = 0; i <= arch.layersPerBlock; i++) h = refResnet(h, w, `decoder.up_blocks.${level}.resnets.${i}`, 32, 1e-6);
    if (level < arch.blockOutChannels.length - 1) h = refConv(refUpsampleNearest(h), w, `decoder.up_blocks.${level}.upsamplers.0.conv`);
  }
  return refConv(refSilu(refGroupNorm(h, w, "decoder.conv_norm_out", 32, 1e-6)), w, "decoder.conv_out");
}

/** CLIPTextTransformer: embeddings, pre-LN causal layers, final LN; pooled at argmax(ids). */
function refClip(ids: Int32Array, batch: number, w: RandomModelWeights, arch: TextEncoderArchitecture): { last: T; pooled: T } {
  const s = ids.length / batch;
  const hd = arch.hiddenSize;
  const tok = w.values("text_model.embeddings.token_embedding.weight");
  const pos = w.values("text_model.embeddings.position_embedding.weight");
  let h = tensor([batch, s, hd]);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < s; i++)
      for (let e = 0; e < hd; e++) h.data[(b * s + i) * hd + e] = tok[ids[b * s + i] * hd + e] + pos[i * hd + e];
  for (let l = 0; l < arch.layers; l++) {
    const p = `text_model.encoder.layers.${l}`;
    const x = refLayerNorm(h, w, `${p}.layer_norm1`, arch.layerNormEpsilon);
    const q = refLinear(x, w, `${p}.self_attn.q_proj`);
    const k = refLinear(x, w, `${p}.self_attn.k_proj`);
    const v = refLinear(x, w, `${p}.self_attn.v_proj`);
    h = add(h, refLinear(refAttention(q, k, v, arch.heads, true), w, `${p}.self_attn.out_proj`));
    const m = refQuickGelu(refLinear(refLayerNorm(h, w, `${p}.layer_norm2`, arch.layerNormEpsilon), w, `${p}.mlp.fc1`));
    h = add(h, refLinear(m, w, `${p}.mlp.fc2`));
  }
  const last = refLayerNorm(h, w, "text_model.final_layer_norm", arch.layerNormEpsilon);
  const pooled = tensor([batch, hd]);
  for (let b = 0; b < batch; b++) {
    let best = 0;
    for (let i = 1; i < s; i++) if (ids[b * s + i] > ids[b * s + best]) best = i;
    pooled.data.set(last.data.subarray((b * s + best) * hd, (b * s + best + 1) * hd), b * hd);
  }
  return { last, pooled };
}

// ---------------------------------------------------------------------------------------------
// Writing, running, comparing.

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "maskflow-graph-te-vae-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let modelCount = 0;
async function writeAndOpen(g: OnnxGraphBuilder): Promise<{ dir: string; session: ort.InferenceSession }> {
  const dir = path.join(root, `${g.graphName}-${modelCount++}`);
  return { dir, session: await writeAndOpenGraph(g, dir, { intraOpNumThreads: 2 }) };
}

async function run(g: OnnxGraphBuilder, feeds: Record<string, ort.Tensor>): Promise<{ dir: string; outputs: Record<string, ort.Tensor> }> {
  const { dir, session } = await writeAndOpen(g);
  try {
    return { dir, outputs: await session.run(feeds) };
  } finally {
    await session.release();
  }
}

const floatTensor = (t: T): ort.Tensor => new ort.Tensor("float32", Float32Array.from(t.data), [...t.dims]);

/** Max |a − b| relative to the reference's largest magnitude: float32 rounding through a few dozen ops. */
function expectClose(actual: ort.Tensor, expected: T, tolerance = 1e-4): void {
  expect([...actual.dims]).toEqual([...expected.dims]);
  const values = actual.data as Float32Array;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    scale = Math.max(scale, Math.abs(expected.data[i]));
    worst = Math.max(worst, Math.abs(values[i] - expected.data[i]));
  }
  expect(values.every(Number.isFinite)).toBe(true);
  expect(scale).toBeGreaterThan(0);
  expect(worst / scale).toBeLessThan(tolerance);
}

/** A graph of one layer: input `x` of `dims` (symbolic batch/height/width), output `y`. */
function layerGraph(name: string, dims: readonly (number | string)[], build: (g: OnnxGraphBuilder, x: string) => string, extraInputs: Record<string, readonly (number | string)[]> = {}): OnnxGraphBuilder {
  const g = new OnnxGraphBuilder(name);
  const x = g.input("x", "float32", dims);
  for (const [input, inputDims] of Object.entries(extraInputs)) g.input(input, "float32", inputDims);
  g.node("Identity", [build(g, x)], {}, "y");
  g.output("y", "float32", dims.map((d, i) => (i === 0 ? d : `y${i}`)));
  return g;
}

describe("shared 2-D layers", () => {
  it("conv2d: same padding, stride, asymmetric pads, no bias", async () => {
    const shapes: Shapes = new Map();
    addConv(shapes, "c3", 5, 4, 3);
    addConv(shapes, "c1", 6, 4, 1);
    shapes.set("nobias.weight", [3, 4, 3, 3]);
    const w = new RandomModelWeights(shapes);
    const x = randomTensor([2, 4, 7, 6], 11);
    const cases: [string, (g: OnnxGraphBuilder, x: string) => string, T][] = [
      ["c3", (g, v) => conv2d(g, v, w, "c3"), refConv(x, w, "c3")],
      ["c1", (g, v) => conv2d(g, v, w, "c1"), refConv(x, w, "c1")],
      ["nobias", (g, v) => conv2d(g, v, w, "nobias", { stride: 2 }), refConv(x, w, "nobias", 2)],
      ["asym", (g, v) => conv2d(g, v, w, "c3", { stride: 2, pads: [0, 0, 1, 1] }), refConv(x, w, "c3", 2, [0, 0, 1, 1])],
    ];
    for (const [name, build, expected] of cases) {
      const { outputs } = await run(layerGraph(name, ["batch", 4, "height", "width"], build), { x: floatTensor(x) });
      expectClose(outputs.y, expected);
    }
  });

  it("group norm over symbolic shapes, linear, layer norm and the activations", async () => {
    const shapes: Shapes = new Map();
    addNorm(shapes, "gn", 64);
    addLinear(shapes, "fc", 12, 64);
    shapes.set("fc_nobias.weight", [5, 64]);
    addNorm(shapes, "ln", 64);
    const w = new RandomModelWeights(shapes);
    const image = randomTensor([2, 64, 5, 3], 12);
    // A large mean makes a naive one-pass variance visibly wrong.
    const shifted = map(image, (v) => 3 * v + 5);
    const gn = await run(layerGraph("gn", ["batch", 64, "height", "width"], (g, v) => groupNorm(g, v, w, "gn", { groups: 32, epsilon: 1e-6 })), { x: floatTensor(shifted) });
    expectClose(gn.outputs.y, refGroupNorm(shifted, w, "gn", 32, 1e-6));

    const rows = randomTensor([2, 3, 64], 13);
    const cases: [string, (g: OnnxGraphBuilder, x: string) => string, T][] = [
      ["fc", (g, v) => linear(g, v, w, "fc"), refLinear(rows, w, "fc")],
      ["fc_nobias", (g, v) => linear(g, v, w, "fc_nobias"), refLinear(rows, w, "fc_nobias")],
      ["ln", (g, v) => layerNorm(g, v, w, "ln", 1e-5), refLayerNorm(rows, w, "ln", 1e-5)],
      ["silu", (g, v) => silu(g, v), refSilu(map(rows, (v) => 4 * v))],
      ["quick_gelu", (g, v) => quickGelu(g, v), refQuickGelu(map(rows, (v) => 4 * v))],
      ["gelu", (g, v) => gelu(g, v), refGelu(map(rows, (v) => 4 * v))],
    ];
    for (const [name, build, expected] of cases) {
      const input = ["silu", "quick_gelu", "gelu"].includes(name) ? map(rows, (v) => 4 * v) : rows;
      const { outputs } = await run(layerGraph(name, ["batch", "sequence", 64], build), { x: floatTensor(input) });
      expectClose(outputs.y, expected);
    }
  });

  it("ResnetBlock2D with a time embedding and a shortcut conv, and without either", async () => {
    const shapes: Shapes = new Map();
    addResnet(shapes, "down.resnets.0", 32, 64, 40);
    addResnet(shapes, "mid.resnets.0", 32, 32);
    const w = new RandomModelWeights(shapes);
    const x = randomTensor([2, 32, 6, 5], 14);
    const temb = refSilu(randomTensor([2, 40], 15));
    const withTemb = await run(
      layerGraph("resnet_temb", ["batch", 32, "height", "width"], (g, v) => resnetBlock2d(g, v, w, "down.resnets.0", { groups: 32, epsilon: 1e-5, temb: "temb" }), { temb: ["batch", 40] }),
      { x: floatTensor(x), temb: floatTensor(temb) },
    );
    expectClose(withTemb.outputs.y, refResnet(x, w, "down.resnets.0", 32, 1e-5, temb));
    const plain = await run(layerGraph("resnet", ["batch", 32, "height", "width"], (g, v) => resnetBlock2d(g, v, w, "mid.resnets.0", { groups: 32, epsilon: 1e-6 })), { x: floatTensor(x) });
    expectClose(plain.outputs.y, refResnet(x, w, "mid.resnets.0", 32, 1e-6));
  });

  it("downsample (VAE's asymmetric pad, UNet's symmetric) and nearest ×2 upsample on odd sizes", async () => {
    const shapes: Shapes = new Map();
    addConv(shapes, "down.conv", 8, 8, 3);
    addConv(shapes, "up.conv", 8, 8, 3);
    const w = new RandomModelWeights(shapes);
    for (const dims of [[1, 8, 7, 5], [2, 8, 6, 8]]) {
      const x = randomTensor(dims, 16);
      const vae = await run(layerGraph("down_vae", ["batch", 8, "height", "width"], (g, v) => downsample2d(g, v, w, "down", { padAsymmetric: true })), { x: floatTensor(x) });
      expectClose(vae.outputs.y, refConv(x, w, "down.conv", 2, [0, 0, 1, 1]));
      const unet = await run(layerGraph("down_unet", ["batch", 8, "height", "width"], (g, v) => downsample2d(g, v, w, "down", { padAsymmetric: false })), { x: floatTensor(x) });
      expectClose(unet.outputs.y, refConv(x, w, "down.conv", 2, [1, 1, 1, 1]));
      const up = await run(layerGraph("up", ["batch", 8, "height", "width"], (g, v) => upsample2d(g, v, w, "up")), { x: floatTensor(x) });
      expectClose(up.outputs.y, refConv(refUpsampleNearest(x), w, "up.conv"));
    }
  });
});

/** Every external initializer of a written model starts at a multiple of 64 KiB; returns them by name. */
async function expectAlignedExternalData(dir: string): Promise<Map<string, onnxProto.onnx.ITensorProto>> {
  const model = onnx.ModelProto.decode(await readFile(path.join(dir, "model.onnx")));
  const initializers = new Map<string, onnxProto.onnx.ITensorProto>();
  let external = 0;
  for (const init of model.graph!.initializer!) {
    initializers.set(init.name!, init);
    if (init.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    external++;
    const entries = Object.fromEntries(init.externalData!.map((e) => [e.key, e.value]));
    expect(entries.location).toBe("model.onnx_data");
    expect(Number(entries.offset) % 65_536, `${init.name} at offset ${entries.offset}`).toBe(0);
  }
  expect(external).toBeGreaterThan(0);
  return initializers;
}

describe("CLIP text encoder graph", () => {
  const weights = new RandomModelWeights(clipShapes(TINY_CLIP), 7);

  /** BOS, a few words, EOS, EOS-padded to `length` (as SD's tokenizer pads). */
  function prompt(words: number[], length: number): number[] {
    const ids = [49406, ...words, 49407];
    while (ids.length < length) ids.push(49407);
    return ids;
  }

  it("matches the reference for 77-token prompts and a short sequence; pooled at the EOS", async () => {
    const g = buildTextEncoderGraph(weights, TINY_CLIP);
    const { dir, session } = await writeAndOpen(g);
    try {
      expect(session.inputNames).toEqual(["input_ids"]);
      expect(session.outputNames).toEqual(["last_hidden_state", "pooler_output"]);
      for (const [batch, length] of [[2, 77], [1, 9]]) {
        const ids = Int32Array.from([
          ...prompt([320, 1125, 539, 518, 40_000], length),
          ...(batch > 1 ? prompt([2368, 12, 49_405, 7, 9, 10, 11], length) : []),
        ]);
        const outputs = await session.run({ input_ids: new ort.Tensor("int32", ids, [batch, length]) });
        const expected = refClip(ids, batch, weights, TINY_CLIP);
        expectClose(outputs.last_hidden_state, expected.last);
        expectClose(outputs.pooler_output, expected.pooled);
      }
    } finally {
      await session.release();
    }
    // Every checkpoint tensor but the position_ids buffer is used, under its transformers name.
    const initializers = await expectAlignedExternalData(dir);
    expect([...weights.readNames].sort()).toEqual(weights.names().filter((n) => !n.endsWith("position_ids")).sort());
    expect(initializers.has("text_model.encoder.layers.1.mlp.fc1.weight")).toBe(true);
  });

  it("splits and merges several heads correctly (SD 1.5 has 12)", async () => {
    // Small in width but with several heads, so a wrong head split or merge shows.
    const arch: TextEncoderArchitecture = { ...TINY_CLIP, vocabSize: 1000, hiddenSize: 48, intermediateSize: 96, heads: 4, layers: 1 };
    const w = new RandomModelWeights(clipShapes(arch), 8);
    const ids = Int32Array.from([0, 5, 999, 3, 4, 999, 1, 2]);
    const { outputs } = await run(buildTextEncoderGraph(w, arch), { input_ids: new ort.Tensor("int32", ids, [2, 4]) });
    const expected = refClip(ids, 2, w, arch);
    expectClose(outputs.last_hidden_state, expected.last);
    expectClose(outputs.pooler_output, expected.pooled);
  });
});

describe("VAE graphs", () => {
  const weights = new RandomModelWeights(vaeShapes(TINY_VAE), 9);

  it("encoder: pixels → mean ‖ logvar at 1/4 the size, any batch and size", async () => {
    const g = buildVaeEncoderGraph(weights, TINY_VAE);
    const { dir, session } = await writeAndOpen(g);
    try {
      expect(session.inputNames).toEqual(["sample"]);
      expect(session.outputNames).toEqual(["latent_parameters"]);
      for (const [dims, seed] of [[[2, 3, 16, 12], 21], [[1, 3, 8, 20], 22]] as const) {
        const x = randomTensor(dims, seed);
        const outputs = await session.run({ sample: floatTensor(x) });
        expect(outputs.latent_parameters.dims).toEqual([dims[0], 8, dims[2] / 4, dims[3] / 4]);
        expectClose(outputs.latent_parameters, refVaeEncoder(x, weights, TINY_VAE));
      }
    } finally {
      await session.release();
    }
    await expectAlignedExternalData(dir);
    expect([...weights.readNames].filter((n) => n.startsWith("encoder.") || n === "quant_conv.weight").length).toBeGreaterThan(0);
  });

  it("decoder: latents → pixels at 4× the size, any batch and size", async () => {
    const g = buildVaeDecoderGraph(weights, TINY_VAE);
    const { dir, session } = await writeAndOpen(g);
    try {
      expect(session.inputNames).toEqual(["latent_sample"]);
      expect(session.outputNames).toEqual(["sample"]);
      for (const [dims, seed] of [[[2, 4, 3, 5], 23], [[1, 4, 4, 4], 24]] as const) {
        const z = randomTensor(dims, seed);
        const outputs = await session.run({ latent_sample: floatTensor(z) });
        expect(outputs.sample.dims).toEqual([dims[0], 3, dims[2] * 4, dims[3] * 4]);
        expectClose(outputs.sample, refVaeDecoder(z, weights, TINY_VAE));
      }
    } finally {
      await session.release();
    }
    await expectAlignedExternalData(dir);
  });

  it("the two halves use every VAE tensor exactly under its AutoencoderKL name", async () => {
    const w = new RandomModelWeights(vaeShapes(TINY_VAE), 10);
    await writeAndOpen(buildVaeEncoderGraph(w, TINY_VAE)).then(({ session }) => session.release());
    await writeAndOpen(buildVaeDecoderGraph(w, TINY_VAE)).then(({ session }) => session.release());
    expect([...w.readNames].sort()).toEqual(w.names().sort());
  });
});

describe("SD 1.5's real shapes", () => {
  // Built, not written: every weight name the graphs ask for must exist in a full-size state dict
  // (the builder throws on a missing one), and the channel bookkeeping must agree with diffusers'.
  const shapeOnly = (shapes: Shapes): ModelWeights => ({
    shape: (name) => shapes.get(name),
    read: async () => {
      throw new Error("not read in a build-only test");
    },
  });

  it("builds the text encoder (768 wide, 12 layers, 12 heads) and the VAE ([128, 256, 512, 512], 2 per block)", () => {
    const clip: TextEncoderArchitecture = { ...TINY_CLIP, hiddenSize: 768, intermediateSize: 3072, layers: 12, heads: 12 };
    const vae: VaeArchitecture = { ...TINY_VAE, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, sampleSize: 512 };
    expect(buildTextEncoderGraph(shapeOnly(clipShapes(clip)), clip).graphName).toBe("text_encoder");
    expect(buildVaeEncoderGraph(shapeOnly(vaeShapes(vae)), vae).graphName).toBe("vae_encoder");
    expect(buildVaeDecoderGraph(shapeOnly(vaeShapes(vae)), vae).graphName).toBe("vae_decoder");
  });
});
