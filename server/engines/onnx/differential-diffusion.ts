/**
 * Soft inpainting by differential diffusion (Levin & Fried, 2024), in the form of diffusers' community
 * pipelines (pipeline_stable_diffusion_xl_differential_img2img.py): a grey mask says how much each place may
 * change. Before denoising step i of n, the latents where the mask is below 1 − i/n are put back to the original
 * latents noised to that step's timestep, so a place with mask value m follows the original for the first
 * (1 − m) · n steps and is free for the rest: 0 never changes, 1 is repainted from the first step.
 *
 * diffusers writes it with the inverted "change map" (map = 1 − mask here): reset where map > i / n.
 * Two choices differ from that pipeline and are said in the README: n is the number of steps run (with
 * strength < 1 the whole grey range still spreads over the steps, as ComfyUI's DifferentialDiffusion does by
 * normalising over the run's sigmas), and after the last step the places whose mask is exactly 0 take the
 * clean original latents, as diffusers' 4-channel inpainting does with its known region.
 */
import type { Mask } from "../../../nodes/socket-types.ts";

/**
 * The mask at latent resolution: the mean of each latent's factor × factor pixels, x / 255. An area mean,
 * not nearest, because a latent half covered by a soft brush should be half free, not all or nothing.
 */
export function latentChangeMask(mask: Mask, factor: number): Float32Array {
  const latentWidth = mask.width / factor;
  const latentHeight = mask.height / factor;
  if (!Number.isInteger(latentWidth) || !Number.isInteger(latentHeight)) {
    throw new Error(`soft_mask: the mask (${mask.width}×${mask.height}) must be a whole number of ${factor}×${factor} latents`);
  }
  const out = new Float32Array(latentWidth * latentHeight);
  const cell = factor * factor * 255;
  for (let y = 0; y < latentHeight; y++) {
    for (let x = 0; x < latentWidth; x++) {
      let sum = 0;
      for (let dy = 0; dy < factor; dy++) {
        const row = (y * factor + dy) * mask.width + x * factor;
        for (let dx = 0; dx < factor; dx++) sum += mask.data[row + dx];
      }
      out[y * latentWidth + x] = sum / cell;
    }
  }
  return out;
}

/**
 * Which latents are held to the original before step `step` (0-based) of `stepsRun`; `step === stepsRun`
 * is after the last step, where only the places the mask leaves wholly alone (0) are held, to the clean latents.
 */
export function heldBeforeStep(changeMask: Float32Array, step: number, stepsRun: number): Uint8Array {
  const held = new Uint8Array(changeMask.length);
  if (step >= stepsRun) {
    for (let p = 0; p < held.length; p++) held[p] = changeMask[p] <= 0 ? 1 : 0;
    return held;
  }
  // Written as diffusers writes it, map > i / n with map = 1 − mask, so the comparison rounds the same way.
  // Both sides in float32, as torch holds them.
  const threshold = Math.fround(step / stepsRun);
  for (let p = 0; p < held.length; p++) held[p] = Math.fround(1 - changeMask[p]) > threshold ? 1 : 0;
  return held;
}

/** Puts `original` (the original latents noised to the step, batch × 4 planes) into `latents` where `held` is set. */
export function holdToOriginal(latents: Float32Array, original: Float32Array, held: Uint8Array): void {
  const plane = held.length;
  for (let base = 0; base < latents.length; base += plane) {
    for (let p = 0; p < plane; p++) if (held[p]) latents[base + p] = original[base + p];
  }
}
