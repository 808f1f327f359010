// The UNet graph built in TypeScript (server/engines/onnx/graph/unet-graph.ts) and its layers, run by
// onnxruntime-node on seeded random weights and checked against a plain float64 TypeScript
// computation written from diffusers' Python (unet_2d_condition.py, transformer_2d.py, attention.py),
// not from the graph code. A miniature UNet ([32, 64], one layer per block) keeps every run small.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { OnnxGraphBuilder } from "../server/engines/onnx/graph/onnx-graph-builder.ts";
import type { ModelWeights } from "../server/engines/onnx/graph/model-weights.ts";
import type { UnetArchitecture } from "../server/engines/onnx/graph/architecture.ts";
import { multiHeadAttention } from "../server/engines/onnx/graph/layers/attention.ts";
import { transformer2d } from "../server/engines/onnx/graph/layers/transformer-2d.ts";
import { buildUnetGraph } from "../server/engines/onnx/graph/unet-graph.ts";
import { TINY_CHECKPOINT_GENERATOR_VERSION, TINY_SD15_ARCHITECTURE, tinyDiffusersTensors } from "./fixtures/make-tiny-checkpoint.ts";
import { writeAndOpenGraph } from "./helpers/open-graph-session.ts";
import { distance, float32FromBase64 } from "./helpers/parity-goldens.ts";
import { RandomModelWeights, uniform } from "./helpers/random-model-weights.ts";

/** The tiny checkpoint's UNet, declared for 8×8 samples. */
const TINY: UnetArchitecture = { ...TINY_SD15_ARCHITECTURE.unet, sampleSize: 8 };

// ---------------------------------------------------------------------------------------------
// Weight shapes, named as diffusers' state dict names them.

function resnetShapes(shapes: Map<string, number[]>, prefix: string, cin: number, cout: number, temb: number): void {
  shapes.set(`${prefix}.norm1.weight`, [cin]).set(`${prefix}.norm1.bias`, [cin]);
  shapes.set(`${prefix}.conv1.weight`, [cout, cin, 3, 3]).set(`${prefix}.conv1.bias`, [cout]);
  shapes.set(`${prefix}.time_emb_proj.weight`, [cout, temb]).set(`${prefix}.time_emb_proj.bias`, [cout]);
  shapes.set(`${prefix}.norm2.weight`, [cout]).set(`${prefix}.norm2.bias`, [cout]);
  shapes.set(`${prefix}.conv2.weight`, [cout, cout, 3, 3]).set(`${prefix}.conv2.bias`, [cout]);
  if (cin !== cout) shapes.set(`${prefix}.conv_shortcut.weight`, [cout, cin, 1, 1]).set(`${prefix}.conv_shortcut.bias`, [cout]);
}

function transformerShapes(shapes: Map<string, number[]>, prefix: string, c: number, contextDim: number, depth: number): void {
  shapes.set(`${prefix}.norm.weight`, [c]).set(`${prefix}.norm.bias`, [c]);
  shapes.set(`${prefix}.proj_in.weight`, [c, c, 1, 1]).set(`${prefix}.proj_in.bias`, [c]);
  for (let i = 0; i < depth; i++) {
    const b = `${prefix}.transformer_blocks.${i}`;
    for (const norm of ["norm1", "norm2", "norm3"]) shapes.set(`${b}.${norm}.weight`, [c]).set(`${b}.${norm}.bias`, [c]);
    for (const [attn, kvDim] of [["attn1", c], ["attn2", contextDim]] as const) {
      shapes.set(`${b}.${attn}.to_q.weight`, [c, c]);
      shapes.set(`${b}.${attn}.to_k.weight`, [c, kvDim]);
      shapes.set(`${b}.${attn}.to_v.weight`, [c, kvDim]);
      shapes.set(`${b}.${attn}.to_out.0.weight`, [c, c]).set(`${b}.${attn}.to_out.0.bias`, [c]);
    }
    shapes.set(`${b}.ff.net.0.proj.weight`, [8 * c, c]).set(`${b}.ff.net.0.proj.bias`, [8 * c]);
    shapes.set(`${b}.ff.net.2.weight`, [c, 4 * c]).set(`${b}.ff.net.2.bias`, [c]);
  }
  shapes.set(`${prefix}.proj_out.weight`, [c, c, 1, 1]).set(`${prefix}.proj_out.bias`, [c]);
}

/** Every weight of a UNet2DConditionModel of this architecture, as diffusers' __init__ creates them. */
function unetWeightShapes(arch: UnetArchitecture): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const channels = arch.blockOutChannels;
  const levels = channels.length;
  const c0 = channels[0];
  const temb = 4 * c0;
  const ctx = arch.crossAttentionDim;
  shapes.set("conv_in.weight", [c0, arch.inChannels, 3, 3]).set("conv_in.bias", [c0]);
  shapes.set("time_embedding.linear_1.weight", [temb, c0]).set("time_embedding.linear_1.bias", [temb]);
  shapes.set("time_embedding.linear_2.weight", [temb, temb]).set("time_embedding.linear_2.bias", [temb]);
  let out = c0;
  for (let i = 0; i < levels; i++) {
    const input = out;
    out = channels[i];
    for (let j = 0; j < arch.layersPerBlock; j++) {
      resnetShapes(shapes, `down_blocks.${i}.resnets.${j}`, j === 0 ? input : out, out, temb);
      if (i < levels - 1) transformerShapes(shapes, `down_blocks.${i}.attentions.${j}`, out, ctx, arch.transformerDepth);
    }
    if (i < levels - 1) shapes.set(`down_blocks.${i}.downsamplers.0.conv.weight`, [out, out, 3, 3]).set(`down_blocks.${i}.downsamplers.0.conv.bias`, [out]);
  }
  const deepest = channels[levels - 1];
  resnetShapes(shapes, "mid_block.resnets.0", deepest, deepest, temb);
  transformerShapes(shapes, "mid_block.attentions.0", deepest, ctx, arch.transformerDepth);
  resnetShapes(shapes, "mid_block.resnets.1", deepest, deepest, temb);
  const reversed = [...channels].reverse();
  let previous = reversed[0];
  for (let i = 0; i < levels; i++) {
    const output = reversed[i];
    const input = reversed[Math.min(i + 1, levels - 1)];
    for (let j = 0; j <= arch.layersPerBlock; j++) {
      const skip = j === arch.layersPerBlock ? input : output;
      resnetShapes(shapes, `up_blocks.${i}.resnets.${j}`, (j === 0 ? previous : output) + skip, output, temb);
      if (i > 0) transformerShapes(shapes, `up_blocks.${i}.attentions.${j}`, output, ctx, arch.transformerDepth);
    }
    if (i < levels - 1) shapes.set(`up_blocks.${i}.upsamplers.0.conv.weight`, [output, output, 3, 3]).set(`up_blocks.${i}.upsamplers.0.conv.bias`, [output]);
    previous = output;
  }
  shapes.set("conv_norm_out.weight", [c0]).set("conv_norm_out.bias", [c0]);
  shapes.set("conv_out.weight", [arch.outChannels, c0, 3, 3]).set("conv_out.bias", [arch.outChannels]);
  return shapes;
}

// ---------------------------------------------------------------------------------------------
// The float64 reference: row-major tensors, one plain loop per operation.

interface T {
  readonly dims: number[];
  readonly data: Float64Array;
}

const tensor = (dims: number[], data?: ArrayLike<number>): T => ({ dims, data: data ? Float64Array.from(data) : new Float64Array(dims.reduce((a, b) => a * b, 1)) });

async function w(weights: ModelWeights, name: string): Promise<T> {
  return tensor([...weights.shape(name)!], await weights.read(name));
}

function conv2dRef(x: T, weight: T, bias: T | undefined, stride = 1): T {
  const [n, ci, h, wd] = x.dims;
  const [co, , kh, kw] = weight.dims;
  const pad = Math.floor(kh / 2);
  const oh = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const ow = Math.floor((wd + 2 * pad - kw) / stride) + 1;
  const out = tensor([n, co, oh, ow]);
  for (let b = 0; b < n; b++)
    for (let o = 0; o < co; o++)
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          let sum = bias ? bias.data[o] : 0;
          for (let i = 0; i < ci; i++)
            for (let dy = 0; dy < kh; dy++) {
              const sy = y * stride + dy - pad;
              if (sy < 0 || sy >= h) continue;
              for (let dx = 0; dx < kw; dx++) {
                const sx = xx * stride + dx - pad;
                if (sx < 0 || sx >= wd) continue;
                sum += x.data[((b * ci + i) * h + sy) * wd + sx] * weight.data[((o * ci + i) * kh + dy) * kw + dx];
              }
            }
          out.data[((b * co + o) * oh + y) * ow + xx] = sum;
        }
  return out;
}

async function convRef(x: T, weights: ModelWeights, prefix: string, stride = 1): Promise<T> {
  const bias = weights.shape(`${prefix}.bias`) ? await w(weights, `${prefix}.bias`) : undefined;
  return conv2dRef(x, await w(weights, `${prefix}.weight`), bias, stride);
}

async function groupNormRef(x: T, weights: ModelWeights, prefix: string, groups: number, eps: number): Promise<T> {
  const [n, c] = x.dims;
  const spatial = x.data.length / (n * c);
  const per = (c / groups) * spatial;
  const gamma = await w(weights, `${prefix}.weight`);
  const beta = await w(weights, `${prefix}.bias`);
  const out = tensor([...x.dims]);
  for (let b = 0; b < n; b++)
    for (let gi = 0; gi < groups; gi++) {
      const start = (b * c + gi * (c / groups)) * spatial;
      let mean = 0;
      for (let i = 0; i < per; i++) mean += x.data[start + i];
      mean /= per;
      let variance = 0;
      for (let i = 0; i < per; i++) variance += (x.data[start + i] - mean) ** 2;
      variance /= per;
      for (let i = 0; i < per; i++) {
        const channel = gi * (c / groups) + Math.floor(i / spatial);
        out.data[start + i] = ((x.data[start + i] - mean) / Math.sqrt(variance + eps)) * gamma.data[channel] + beta.data[channel];
      }
    }
  return out;
}

const map = (x: T, f: (v: number) => number): T => tensor([...x.dims], x.data.map(f));
const siluRef = (x: T): T => map(x, (v) => v / (1 + Math.exp(-v)));
const addRef = (a: T, b: T): T => tensor([...a.dims], a.data.map((v, i) => v + b.data[i]));

/** erf by its Maclaurin series (float64 is ample for |x| < 5), ±1 beyond. */
function erf(x: number): number {
  if (Math.abs(x) >= 5) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let k = 1; k < 200; k++) {
    term *= (-x * x) / k;
    const add = term / (2 * k + 1);
    sum += add;
    if (Math.abs(add) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const geluRef = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));

async function linearRef(x: T, weights: ModelWeights, prefix: string): Promise<T> {
  const weight = await w(weights, `${prefix}.weight`);
  const bias = weights.shape(`${prefix}.bias`) ? await w(weights, `${prefix}.bias`) : undefined;
  const [outF, inF] = weight.dims;
  const rows = x.data.length / inF;
  const out = tensor([...x.dims.slice(0, -1), outF]);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let sum = bias ? bias.data[o] : 0;
      for (let i = 0; i < inF; i++) sum += x.data[r * inF + i] * weight.data[o * inF + i];
      out.data[r * outF + o] = sum;
    }
  return out;
}

async function layerNormRef(x: T, weights: ModelWeights, prefix: string, eps: number): Promise<T> {
  const gamma = await w(weights, `${prefix}.weight`);
  const beta = await w(weights, `${prefix}.bias`);
  const c = x.dims[x.dims.length - 1];
  const out = tensor([...x.dims]);
  for (let r = 0; r < x.data.length / c; r++) {
    const row = x.data.subarray(r * c, (r + 1) * c);
    const mean = row.reduce((a, b) => a + b, 0) / c;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / c;
    for (let i = 0; i < c; i++) out.data[r * c + i] = ((row[i] - mean) / Math.sqrt(variance + eps)) * gamma.data[i] + beta.data[i];
  }
  return out;
}

/** softmax(Q Kᵀ / √d) V per head; q [N, S, C], k and v [N, L, C]. */
function attentionRef(q: T, k: T, v: T, heads: number): T {
  const [n, s, c] = q.dims;
  const l = k.dims[1];
  const d = c / heads;
  const out = tensor([n, s, c]);
  const scores = new Float64Array(l);
  for (let b = 0; b < n; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < s; i++) {
        let max = -Infinity;
        for (let j = 0; j < l; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q.data[(b * s + i) * c + h * d + e] * k.data[(b * l + j) * c + h * d + e];
          scores[j] = dot / Math.sqrt(d);
          max = Math.max(max, scores[j]);
        }
        let total = 0;
        for (let j = 0; j < l; j++) total += scores[j] = Math.exp(scores[j] - max);
        for (let e = 0; e < d; e++) {
          let sum = 0;
          for (let j = 0; j < l; j++) sum += (scores[j] / total) * v.data[(b * l + j) * c + h * d + e];
          out.data[(b * s + i) * c + h * d + e] = sum;
        }
      }
  return out;
}

async function attnRef(x: T, context: T, weights: ModelWeights, prefix: string, heads: number): Promise<T> {
  const q = await linearRef(x, weights, `${prefix}.to_q`);
  const k = await linearRef(context, weights, `${prefix}.to_k`);
  const v = await linearRef(context, weights, `${prefix}.to_v`);
  return linearRef(attentionRef(q, k, v, heads), weights, `${prefix}.to_out.0`);
}

async function transformerBlockRef(x: T, context: T, weights: ModelWeights, prefix: string, heads: number): Promise<T> {
  let n = await layerNormRef(x, weights, `${prefix}.norm1`, 1e-5);
  let h = addRef(await attnRef(n, n, weights, `${prefix}.attn1`, heads), x);
  n = await layerNormRef(h, weights, `${prefix}.norm2`, 1e-5);
  h = addRef(await attnRef(n, context, weights, `${prefix}.attn2`, heads), h);
  n = await layerNormRef(h, weights, `${prefix}.norm3`, 1e-5);
  const projected = await linearRef(n, weights, `${prefix}.ff.net.0.proj`);
  const inner = projected.dims[projected.dims.length - 1] / 2;
  const rows = projected.data.length / (2 * inner);
  const gated = tensor([...projected.dims.slice(0, -1), inner]);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < inner; i++) gated.data[r * inner + i] = projected.data[r * 2 * inner + i] * geluRef(projected.data[r * 2 * inner + inner + i]);
  return addRef(await linearRef(gated, weights, `${prefix}.ff.net.2`), h);
}

/** [N, C, H, W] ↔ [N, H·W, C]. */
function toTokens(x: T): T {
  const [n, c, h, wd] = x.dims;
  const out = tensor([n, h * wd, c]);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * wd; p++) out.data[(b * h * wd + p) * c + ch] = x.data[(b * c + ch) * h * wd + p];
  return out;
}
function fromTokens(x: T, h: number, wd: number): T {
  const [n, , c] = x.dims;
  const out = tensor([n, c, h, wd]);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * wd; p++) out.data[(b * c + ch) * h * wd + p] = x.data[(b * h * wd + p) * c + ch];
  return out;
}

async function transformer2dRef(x: T, context: T, weights: ModelWeights, prefix: string, arch: UnetArchitecture): Promise<T> {
  const [, , h, wd] = x.dims;
  let tokens = toTokens(await convRef(await groupNormRef(x, weights, `${prefix}.norm`, arch.normGroups, 1e-6), weights, `${prefix}.proj_in`));
  for (let i = 0; i < arch.transformerDepth; i++) tokens = await transformerBlockRef(tokens, context, weights, `${prefix}.transformer_blocks.${i}`, arch.heads);
  return addRef(await convRef(fromTokens(tokens, h, wd), weights, `${prefix}.proj_out`), x);
}

async function resnetRef(x: T, temb: T, weights: ModelWeights, prefix: string, groups: number): Promise<T> {
  let h = await convRef(siluRef(await groupNormRef(x, weights, `${prefix}.norm1`, groups, 1e-5)), weights, `${prefix}.conv1`);
  const t = await linearRef(siluRef(temb), weights, `${prefix}.time_emb_proj`);
  const [, c, hh, wd] = h.dims;
  h = tensor(h.dims, h.data.map((v, i) => v + t.data[Math.floor(i / (c * hh * wd)) * c + (Math.floor(i / (hh * wd)) % c)]));
  h = await convRef(siluRef(await groupNormRef(h, weights, `${prefix}.norm2`, groups, 1e-5)), weights, `${prefix}.conv2`);
  const shortcut = weights.shape(`${prefix}.conv_shortcut.weight`) ? await convRef(x, weights, `${prefix}.conv_shortcut`) : x;
  return addRef(shortcut, h);
}

function concatChannels(a: T, b: T): T {
  const [n, ca, h, wd] = a.dims;
  const cb = b.dims[1];
  const out = tensor([n, ca + cb, h, wd]);
  const plane = h * wd;
  for (let i = 0; i < n; i++) {
    out.data.set(a.data.subarray(i * ca * plane, (i + 1) * ca * plane), i * (ca + cb) * plane);
    out.data.set(b.data.subarray(i * cb * plane, (i + 1) * cb * plane), (i * (ca + cb) + ca) * plane);
  }
  return out;
}

function upsampleNearestRef(x: T): T {
  const [n, c, h, wd] = x.dims;
  const out = tensor([n, c, 2 * h, 2 * wd]);
  for (let p = 0; p < n * c; p++) for (let y = 0; y < 2 * h; y++) for (let xx = 0; xx < 2 * wd; xx++) out.data[(p * 2 * h + y) * 2 * wd + xx] = x.data[(p * h + (y >> 1)) * wd + (xx >> 1)];
  return out;
}

/** get_timestep_embedding(flip_sin_to_cos=True, shift 0), with torch's float32 frequencies and products. */
function timestepFeaturesRef(timesteps: number[], channels: number): T {
  const half = channels / 2;
  const out = tensor([timesteps.length, channels]);
  timesteps.forEach((t, row) => {
    for (let i = 0; i < half; i++) {
      const freq = Math.fround(Math.exp(Math.fround(Math.fround(Math.fround(-Math.log(10000)) * i) / half)));
      const angle = Math.fround(t * freq);
      out.data[row * channels + i] = Math.cos(angle);
      out.data[row * channels + half + i] = Math.sin(angle);
    }
  });
  return out;
}

/** UNet2DConditionModel.forward, SD 1.x configuration. */
async function unetRef(sample: T, timesteps: number[], context: T, weights: ModelWeights, arch: UnetArchitecture): Promise<T> {
  const levels = arch.blockOutChannels.length;
  const rows = timesteps.length === 1 ? Array(sample.dims[0]).fill(timesteps[0]) : timesteps;
  const features = timestepFeaturesRef(rows, arch.blockOutChannels[0]);
  const temb = await linearRef(siluRef(await linearRef(features, weights, "time_embedding.linear_1")), weights, "time_embedding.linear_2");
  const g = arch.normGroups;
  let h = await convRef(sample, weights, "conv_in");
  const skips: T[] = [h];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < arch.layersPerBlock; j++) {
      h = await resnetRef(h, temb, weights, `down_blocks.${i}.resnets.${j}`, g);
      if (i < levels - 1) h = await transformer2dRef(h, context, weights, `down_blocks.${i}.attentions.${j}`, arch);
      skips.push(h);
    }
    if (i < levels - 1) {
      h = await convRef(h, weights, `down_blocks.${i}.downsamplers.0.conv`, 2);
      skips.push(h);
    }
  }
  h = await resnetRef(h, temb, weights, "mid_block.resnets.0", g);
  h = await transformer2dRef(h, context, weights, "mid_block.attentions.0", arch);
  h = await resnetRef(h, temb, weights, "mid_block.resnets.1", g);
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j <= arch.layersPerBlock; j++) {
      h = await resnetRef(concatChannels(h, skips.pop()!), temb, weights, `up_blocks.${i}.resnets.${j}`, g);
      if (i > 0) h = await transformer2dRef(h, context, weights, `up_blocks.${i}.attentions.${j}`, arch);
    }
    if (i < levels - 1) h = await convRef(upsampleNearestRef(h), weights, `up_blocks.${i}.upsamplers.0.conv`);
  }
  h = siluRef(await groupNormRef(h, weights, "conv_norm_out", g, 1e-5));
  return convRef(h, weights, "conv_out");
}

// ---------------------------------------------------------------------------------------------

/** Largest absolute difference, relative to the reference's largest magnitude. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

let workDir: string;
const sessions: ort.InferenceSession[] = [];
async function openGraph(g: OnnxGraphBuilder, name: string): Promise<ort.InferenceSession> {
  const session = await writeAndOpenGraph(g, path.join(workDir, name), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  sessions.push(session);
  return session;
}

const f32 = (dims: number[], data: ArrayLike<number>): ort.Tensor => new ort.Tensor("float32", Float32Array.from(data), dims);
const i64 = (values: number[]): ort.Tensor => new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), [values.length]);

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "graph-unet-"));
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.release()));
  await rm(workDir, { recursive: true, force: true });
});

describe("multiHeadAttention (com.microsoft.MultiHeadAttention)", () => {
  it("is softmax(QKᵀ/√d)V per head, for self- and cross-attention lengths", async () => {
    const [n, s, l, c, heads] = [2, 37, 11, 64, 8];
    const g = new OnnxGraphBuilder("mha");
    const q = g.input("q", "float32", ["n", "s", c]);
    const k = g.input("k", "float32", ["n", "l", c]);
    const v = g.input("v", "float32", ["n", "l", c]);
    g.node("Identity", [multiHeadAttention(g, q, k, v, heads)], {}, "out");
    g.output("out", "float32", ["n", "s", c]);
    const session = await ort.InferenceSession.create(g.build({ opsetVersion: 17, producerName: "test" }).model, { intraOpNumThreads: 1 });
    sessions.push(session);
    for (const kvLength of [l, s]) {
      const Q = tensor([n, s, c], uniform(n * s * c, 1, 2));
      const K = tensor([n, kvLength, c], uniform(n * kvLength * c, 2, 2));
      const V = tensor([n, kvLength, c], uniform(n * kvLength * c, 3, 1));
      const { out } = await session.run({ q: f32(Q.dims, Q.data), k: f32(K.dims, K.data), v: f32(V.dims, V.data) });
      expect(out.dims).toEqual([n, s, c]);
      expect(relativeError(out.data as Float32Array, attentionRef(Q, K, V, heads).data)).toBeLessThan(1e-5);
    }
  });
});

describe("transformer2d", () => {
  it("matches Transformer2DModel with one BasicTransformerBlock (GroupNorm, proj_in, self, cross, GEGLU, proj_out)", async () => {
    const [n, c, h, wd, seq, ctx] = [2, 64, 3, 5, 7, 48];
    const shapes = new Map<string, number[]>();
    transformerShapes(shapes, "t", c, ctx, 1);
    const weights = new RandomModelWeights(shapes, 0);
    const g = new OnnxGraphBuilder("transformer");
    const x = g.input("x", "float32", ["n", c, "h", "w"]);
    const context = g.input("context", "float32", ["n", "seq", ctx]);
    g.node("Identity", [transformer2d(g, x, weights, "t", { heads: 8, groups: 32, depth: 1, context })], {}, "out");
    g.output("out", "float32", ["n", c, "h", "w"]);
    const session = await openGraph(g, "transformer");
    const X = tensor([n, c, h, wd], uniform(n * c * h * wd, 11, 1.5));
    const C = tensor([n, seq, ctx], uniform(n * seq * ctx, 12, 1));
    const { out } = await session.run({ x: f32(X.dims, X.data), context: f32(C.dims, C.data) });
    expect(out.dims).toEqual([n, c, h, wd]);
    const expected = await transformer2dRef(X, C, weights, "t", { ...TINY, heads: 8, normGroups: 32, transformerDepth: 1 });
    expect(relativeError(out.data as Float32Array, expected.data)).toBeLessThan(1e-5);
  });
});

describe("the miniature UNet ([32, 64], 1 layer per block, 8 heads, context 64)", () => {
  const weights = new RandomModelWeights(unetWeightShapes(TINY), 0);
  const [height, width, seq] = [8, 12, 5];
  const sampleOf = (batch: number, seed: number): T => tensor([batch, TINY.inChannels, height, width], uniform(batch * TINY.inChannels * height * width, seed, 1));
  const contextOf = (batch: number, seed: number): T => tensor([batch, seq, TINY.crossAttentionDim], uniform(batch * seq * TINY.crossAttentionDim, seed, 1));
  let session: ort.InferenceSession;
  const run = async (sample: T, timesteps: number[], context: T): Promise<ort.Tensor> =>
    (await session.run({ sample: f32(sample.dims, sample.data), timestep: i64(timesteps), encoder_hidden_states: f32(context.dims, context.data) })).out_sample;

  beforeAll(async () => {
    session = await openGraph(buildUnetGraph(weights, TINY), "unet");
  });

  it("has the engine's contract: sample, timestep int64, encoder_hidden_states → out_sample", () => {
    expect(session.inputNames).toEqual(["sample", "timestep", "encoder_hidden_states"]);
    expect(session.outputNames).toEqual(["out_sample"]);
  });

  it("gives a finite [batch, 4, H, W] output equal to UNet2DConditionModel's computation", async () => {
    const sample = sampleOf(1, 21);
    const context = contextOf(1, 22);
    const out = await run(sample, [981], context);
    expect(out.dims).toEqual([1, TINY.outChannels, height, width]);
    const data = out.data as Float32Array;
    expect(data.every(Number.isFinite)).toBe(true);
    const expected = await unetRef(sample, [981], context, weights, TINY);
    expect(relativeError(data, expected.data)).toBeLessThan(2e-5);
    // Not a degenerate pass: the output moves with the timestep.
    expect(relativeError(data, (await run(sample, [17], context)).data as Float32Array)).toBeGreaterThan(1e-3);
  });

  it("computes each batch row as its own batch-1 call, with one timestep per row", async () => {
    const sample = sampleOf(2, 31);
    const context = contextOf(2, 32);
    const batched = (await run(sample, [999, 250], context)).data as Float32Array;
    const rowSize = batched.length / 2;
    for (const [row, t] of [[0, 999], [1, 250]]) {
      const single = await run(
        tensor([1, ...sample.dims.slice(1)], sample.data.subarray(row * (sample.data.length / 2), (row + 1) * (sample.data.length / 2))),
        [t],
        tensor([1, seq, TINY.crossAttentionDim], context.data.subarray(row * (context.data.length / 2), (row + 1) * (context.data.length / 2))),
      );
      expect(relativeError(batched.subarray(row * rowSize, (row + 1) * rowSize), single.data as Float32Array)).toBeLessThan(1e-6);
    }
  });

  it("broadcasts a timestep given once to every row, as if given per row", async () => {
    const sample = sampleOf(2, 41);
    const context = contextOf(2, 42);
    const once = (await run(sample, [500], context)).data as Float32Array;
    const perRow = (await run(sample, [500, 500], context)).data as Float32Array;
    expect(relativeError(once, perRow)).toBeLessThan(1e-7);
  });
});

// diffusers' own UNet2DConditionModel on the tiny SD 1.5 inpainting checkpoint (test/parity/checkpoint_fixture.py):
// the same weights (regenerated here from the generator's seed) and inputs must give its out_sample.
describe("parity with diffusers' UNet2DConditionModel on the tiny checkpoint", () => {
  const goldenTensor = z.object({ shape: z.array(z.number().int()), data: z.string() });
  const modulesFile = z.object({
    diffusers: z.string(),
    generator: z.object({ version: z.number(), seed: z.number() }),
    unet: z.object({
      sample: goldenTensor,
      encoder_hidden_states: goldenTensor,
      cases: z.array(z.object({ timestep: z.number().int(), out_sample: goldenTensor })),
    }),
  });
  const arch = TINY_SD15_ARCHITECTURE.unet;

  it("the test's own weight list is the checkpoint generator's, name for name and shape for shape", () => {
    const ours = unetWeightShapes(arch);
    const theirs = new Map(tinyDiffusersTensors().unet.map((t) => [t.name, [...t.shape]]));
    expect(new Map([...ours].sort())).toEqual(new Map([...theirs].sort()));
  });

  it("gives diffusers' out_sample for timesteps 500 and 21 (one timestep for the batch of 2) to float32 rounding", async () => {
    const modules = modulesFile.parse(JSON.parse(await readFile(path.resolve(import.meta.dirname, "fixtures/checkpoint-parity/modules.json"), "utf8")));
    expect(modules.generator.version, "goldens made by another generator version: rerun test/parity/checkpoint_fixture.py").toBe(TINY_CHECKPOINT_GENERATOR_VERSION);
    const tensors = new Map(tinyDiffusersTensors(TINY_SD15_ARCHITECTURE, modules.generator.seed).unet.map((t) => [t.name, t]));
    const weights: ModelWeights = {
      shape: (name) => tensors.get(name)?.shape,
      read: async (name) => Float32Array.from(tensors.get(name)!.values),
    };
    const session = await openGraph(buildUnetGraph(weights, arch), "unet-parity");
    const { sample, encoder_hidden_states: context } = modules.unet;
    for (const golden of modules.unet.cases) {
      const { out_sample: out } = await session.run({
        sample: f32(sample.shape, float32FromBase64(sample.data)),
        timestep: i64([golden.timestep]),
        encoder_hidden_states: f32(context.shape, float32FromBase64(context.data)),
      });
      expect(out.dims).toEqual(golden.out_sample.shape);
      const d = distance(out.data as Float32Array, float32FromBase64(golden.out_sample.data));
      expect(d.relative, `timestep ${golden.timestep}: ${JSON.stringify(d)}`).toBeLessThan(1e-5);
    }
  });
});
