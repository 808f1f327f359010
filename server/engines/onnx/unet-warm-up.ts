/**
 * One UNet call on zeros at the model's own size, made when the model loads. onnxruntime's first run of
 * a shape plans and allocates its buffers (the memory pattern) and touches every page of them: on a
 * real-size UNet that call takes two to three steady steps. Paying it at load keeps the user's first
 * step as fast as the rest, and a job at another size pays only for its own first shape.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { SdModel } from "./sd-model.ts";

/** The load-progress part reported while the warm-up call runs (after the four sessions). */
export const WARM_UP_PHASE = "warming up";

/** Latent side when unet/config.json gives no sample_size: SD 1.5's 64 (512 pixels). */
const DEFAULT_LATENT_SIZE = 64;
/** CLIP's context length: every SD 1.5 prompt is padded to it. */
const CONTEXT_LENGTH = 77;

export async function warmUpUnet(model: SdModel): Promise<void> {
  const side = await unetSampleSize(model.info.dir);
  // Guided jobs (the default guidance 7.5) run uncond and cond in one call when the UNet allows batch 2.
  const batch = model.info.unetBatchable ? 2 : 1;
  const channels = model.info.unetInChannels;
  await model.unet.run(
    {
      sample: { kind: "float", data: new Float32Array(batch * channels * side * side), dims: [batch, channels, side, side] },
      timestep: { kind: "float", data: Float32Array.of(999), dims: [1] },
      encoder_hidden_states: {
        kind: "float",
        data: new Float32Array(batch * CONTEXT_LENGTH * model.info.hiddenSize),
        dims: [batch, CONTEXT_LENGTH, model.info.hiddenSize],
      },
    },
    ["out_sample"],
  );
}

async function unetSampleSize(dir: string): Promise<number> {
  try {
    const config: unknown = JSON.parse(await readFile(path.join(dir, "unet", "config.json"), "utf8"));
    const size = (config as { sample_size?: unknown }).sample_size;
    if (typeof size === "number" && Number.isInteger(size) && size >= 8 && size <= 256) return size;
  } catch {
    // No config (older exports) or an unreadable one: the model loaded without it, so warm up at SD 1.5's size.
  }
  return DEFAULT_LATENT_SIZE;
}
