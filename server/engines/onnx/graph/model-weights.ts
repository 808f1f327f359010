/**
 * The weights a graph builder asks for, by their diffusers module path
 * ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight" for a UNet,
 * "text_model.encoder.layers.0.self_attn.q_proj.weight" for CLIP, "encoder.conv_in.weight" for a VAE).
 * Whoever implements it maps checkpoint layouts to these names, widens dtypes and applies
 * LoRA deltas or merges; the graph builders never see a checkpoint.
 */
export interface ModelWeights {
  /** The tensor's shape in diffusers' layout, or undefined when the model has no such weight. */
  shape(name: string): readonly number[] | undefined;
  /** The tensor as float32 in diffusers' layout, read now (a build holds one at a time). */
  read(name: string): Promise<Float32Array>;
}
