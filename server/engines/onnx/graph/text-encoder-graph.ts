// CLIP's text transformer (transformers' CLIPTextModel as SD 1.x uses it: pre-LayerNorm, causal
// self-attention, quick_gelu MLP) as optimum exports it: token ids → last_hidden_state and pooler_output.
import { attr, float32Tensor, int64Tensor, OnnxGraphBuilder } from "./onnx-graph-builder.ts";
import type { ModelWeights } from "./model-weights.ts";
import type { TextEncoderArchitecture } from "./architecture.ts";
import { constant } from "./layers/constants.ts";
import { layerNorm } from "./layers/layer-norm.ts";
import { linear } from "./layers/linear.ts";
import { quickGelu } from "./layers/activations.ts";

const LAYERS = "text_model.encoder.layers";

function int64(g: OnnxGraphBuilder, key: string, dims: readonly number[], values: readonly number[]): string {
  return constant(g, key, () => int64Tensor(dims, values));
}

/**
 * The additive causal mask for up to `maxPositions` tokens: 0 on and below the diagonal, float32's
 * lowest above it (transformers' _create_4d_causal_attention_mask uses torch.finfo(dtype).min, not
 * −∞, so a row's softmax never sees −∞ − −∞). Sliced to [S, S] in the graph.
 */
function causalMask(maxPositions: number): Float32Array {
  const mask = new Float32Array(maxPositions * maxPositions);
  for (let row = 0; row < maxPositions; row++) {
    for (let column = row + 1; column < maxPositions; column++) mask[row * maxPositions + column] = -3.4028234663852886e38;
  }
  return mask;
}

/**
 * The head split: [N, S, hidden] → [N, heads, S, d]. Reshape's 0 copies N and S from the input, so
 * batch and sequence stay symbolic.
 */
function splitHeads(g: OnnxGraphBuilder, x: string, heads: number, headSize: number): string {
  const shaped = g.node("Reshape", [x, int64(g, `split_heads_${heads}`, [4], [0, 0, heads, headSize])]);
  return g.node("Transpose", [shaped], { perm: attr.ints([0, 2, 1, 3]) });
}

/**
 * CLIPAttention over S ≤ 77 tokens in the plain form, MatMul → + causal mask → Softmax → MatMul.
 * The score tensor is [N, heads, 77, 77], a few hundred KB, so the tiled MultiHeadAttention kernel
 * would save nothing, and with the mask as an attention_bias onnxruntime's CPU leaves its flash path
 * anyway; the plain form is also what torch's exporter emits for CLIP, which onnxruntime's
 * optimiser recognises.
 */
function selfAttention(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, mask: string, arch: TextEncoderArchitecture): string {
  const headSize = arch.hiddenSize / arch.heads;
  // transformers scales the query by d^-½ right after its projection.
  const scale = constant(g, `attention_scale_${headSize}`, () => float32Tensor([], [headSize ** -0.5]));
  const q = splitHeads(g, g.node("Mul", [linear(g, x, weights, `${prefix}.q_proj`), scale]), arch.heads, headSize);
  const k = splitHeads(g, linear(g, x, weights, `${prefix}.k_proj`), arch.heads, headSize);
  const v = splitHeads(g, linear(g, x, weights, `${prefix}.v_proj`), arch.heads, headSize);
  const kT = g.node("Transpose", [k], { perm: attr.ints([0, 1, 3, 2]) });
  const scores = g.node("Add", [g.node("MatMul", [q, kT]), mask]);
  const attended = g.node("MatMul", [g.node("Softmax", [scores], { axis: attr.int(-1) }), v]);
  const merged = g.node("Reshape", [
    g.node("Transpose", [attended], { perm: attr.ints([0, 2, 1, 3]) }),
    int64(g, `merge_heads_${arch.hiddenSize}`, [3], [0, 0, arch.hiddenSize]),
  ]);
  return linear(g, merged, weights, `${prefix}.out_proj`);
}

/** CLIPEncoderLayer: x + attn(LN1(x)), then + fc2(quick_gelu(fc1(LN2(·)))). */
function encoderLayer(g: OnnxGraphBuilder, x: string, weights: ModelWeights, prefix: string, mask: string, arch: TextEncoderArchitecture): string {
  const eps = arch.layerNormEpsilon;
  const attended = g.node("Add", [x, selfAttention(g, layerNorm(g, x, weights, `${prefix}.layer_norm1`, eps), weights, `${prefix}.self_attn`, mask, arch)]);
  const hidden = quickGelu(g, linear(g, layerNorm(g, attended, weights, `${prefix}.layer_norm2`, eps), weights, `${prefix}.mlp.fc1`));
  return g.node("Add", [attended, linear(g, hidden, weights, `${prefix}.mlp.fc2`)]);
}

/**
 * `input_ids` int32 [batch, sequence] (sequence ≤ maxPositions) → `last_hidden_state` float32
 * [batch, sequence, hidden] and `pooler_output` [batch, hidden], the final hidden state at each row's
 * first highest id (CLIP's EOS, 49407, is the vocabulary's last token: transformers' argmax path).
 */
export function buildTextEncoderGraph(weights: ModelWeights, arch: TextEncoderArchitecture): OnnxGraphBuilder {
  if (arch.hiddenSize % arch.heads !== 0) throw new Error(`text encoder: hidden size ${arch.hiddenSize} does not split into ${arch.heads} heads`);
  const g = new OnnxGraphBuilder("text_encoder");
  const inputIds = g.input("input_ids", "int32", ["batch", "sequence"]);

  // position_ids are 0..S−1, made from the sequence length rather than read from the checkpoint's
  // position_ids buffer (absent from some, and the same values anyway).
  const sequence = g.node("Gather", [g.node("Shape", [inputIds]), int64(g, "int64_scalar_1", [], [1])], { axis: attr.int(0) });
  const positions = g.node("Range", [int64(g, "int64_scalar_0", [], [0]), sequence, int64(g, "int64_scalar_1", [], [1])]);
  const tokenEmbeddings = g.node("Gather", [g.weight("text_model.embeddings.token_embedding.weight", weights), inputIds], { axis: attr.int(0) });
  const positionEmbeddings = g.node("Gather", [g.weight("text_model.embeddings.position_embedding.weight", weights), positions], { axis: attr.int(0) });
  let h = g.node("Add", [tokenEmbeddings, positionEmbeddings]);

  // [S, S] corner of the [77, 77] constant; broadcast over batch and heads.
  const sequence1d = g.node("Unsqueeze", [sequence, int64(g, "int64_axes_0", [1], [0])]);
  const fullMask = g.initializer("causal_mask", float32Tensor([arch.maxPositions, arch.maxPositions], causalMask(arch.maxPositions)));
  const mask = g.node("Slice", [fullMask, int64(g, "int64_zeros_2", [2], [0, 0]), g.node("Concat", [sequence1d, sequence1d], { axis: attr.int(0) }), int64(g, "int64_axes_0_1", [2], [0, 1])]);

  for (let layer = 0; layer < arch.layers; layer++) h = encoderLayer(g, h, weights, `${LAYERS}.${layer}`, mask, arch);
  const last = g.node("Identity", [layerNorm(g, h, weights, "text_model.final_layer_norm", arch.layerNormEpsilon)], {}, "last_hidden_state");
  g.output("last_hidden_state", "float32", ["batch", "sequence", arch.hiddenSize]);

  // pooler_output: last_hidden_state[n, argmax(input_ids[n])]; ArgMax keeps the first of equal ids, as torch does.
  const eos = g.node("ArgMax", [inputIds], { axis: attr.int(-1), keepdims: attr.int(1) });
  g.node("GatherND", [last, eos], { batch_dims: attr.int(1) }, "pooler_output");
  g.output("pooler_output", "float32", ["batch", arch.hiddenSize]);
  return g;
}
