/**
 * A live preview of the denoising without another model: SD 1.5's four latent channels projected
 * linearly onto RGB (the factors ComfyUI's latent previewer uses for SD 1.x).
 */
import type { RgbImage } from "../../../nodes/socket-types.ts";

const SD15_LATENT_RGB: readonly (readonly [number, number, number])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

/** The first sample of a [N, 4, h, w] latent batch as an h × w RGB picture. */
export function latentPreview(latents: Float32Array, width: number, height: number): RgbImage {
  const plane = width * height;
  const data = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      let value = 0;
      for (let k = 0; k < 4; k++) value += latents[k * plane + i] * SD15_LATENT_RGB[k][c];
      data[i * 3 + c] = Math.max(0, Math.min(255, Math.round((value + 1) * 127.5)));
    }
  }
  return { width, height, data };
}
