/**
 * The Inpaint node's `segmind` backend: the graph's picture, mask, prompt and sampling settings sent to
 * Segmind's hosted sd1.5-inpainting, the answer decoded back into pictures.
 */
import type { SegmindClient } from "../../server/engines/segmind/segmind-client.ts";
import type { SegmindRequestInput } from "../../server/engines/segmind/segmind-request.ts";
import { decodePicture } from "../image/decode-picture.ts";
import { maskToSharp, toSharp } from "../image/sharp-conversions.ts";
import type { Mask, PromptValue, RgbImage, SchedulerSettings } from "../socket-types.ts";

export interface SegmindInpaintJob {
  readonly image: RgbImage;
  readonly mask: Mask;
  readonly prompt: PromptValue;
  readonly scheduler: SchedulerSettings;
  readonly samples: number;
  readonly width: number;
  readonly height: number;
}

export async function inpaintOnSegmind(
  client: SegmindClient,
  job: SegmindInpaintJob,
  options: { signal: AbortSignal; onRetry?: (message: string) => void },
): Promise<{ images: RgbImage[]; remainingCredits?: number }> {
  // The mask must match the picture for Segmind: resize it here rather than let the service guess.
  const maskPipeline =
    job.mask.width === job.image.width && job.mask.height === job.image.height
      ? maskToSharp(job.mask)
      : maskToSharp(job.mask).resize(job.image.width, job.image.height, { fit: "fill" });
  const [imagePng, maskPng] = await Promise.all([toSharp(job.image).png().toBuffer(), maskPipeline.png().toBuffer()]);
  const result = await client.inpaint(
    {
      image: imagePng.toString("base64"),
      mask: maskPng.toString("base64"),
      prompt: job.prompt.positive,
      negative_prompt: job.prompt.negative || undefined,
      samples: job.samples,
      // Unchecked here on purpose: the client validates every field against Segmind's ranges before sending.
      scheduler: job.scheduler.name as SegmindRequestInput["scheduler"],
      num_inference_steps: job.scheduler.steps,
      guidance_scale: job.scheduler.guidance,
      strength: job.scheduler.strength,
      seed: job.scheduler.seed,
      img_width: job.width as SegmindRequestInput["img_width"],
      img_height: job.height as SegmindRequestInput["img_height"],
    },
    {
      signal: options.signal,
      onRetry: (event) => options.onRetry?.(`Segmind answered ${event.status ?? event.reason}; retry ${event.attempt - 1} in ${Math.round(event.delayMs)} ms`),
    },
  );
  const images: RgbImage[] = [];
  for (const bytes of result.images) {
    // Segmind answers at img_width × img_height, the size the node asked for: no resize needed.
    const { image } = await decodePicture(bytes);
    images.push(image);
  }
  return { images, remainingCredits: result.remainingCredits };
}
