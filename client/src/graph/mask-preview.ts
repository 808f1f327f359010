/**
 * What a LoadMask will hand to the graph, drawn as grey (white = repaint): the channel of its picture
 * the server reads, with the same rules as nodes/mask/load-mask.ts, so the thumbnail shows the mask
 * and not the picture it is stored in (an alpha mask's RGB says nothing about what gets repainted).
 */

export const MASK_CHANNELS = ["alpha", "red", "green", "blue", "luminance"] as const;
export type MaskChannel = (typeof MASK_CHANNELS)[number];

export interface MaskPreview {
  readonly canvas: HTMLCanvasElement;
  /** The share of pixels at or above half strength, as the mask painter counts "masked". */
  readonly coverage: number;
}

/** ITU-R BT.601 luma, the weights the LoadMask node uses. */
const LUMA = [0.299, 0.587, 0.114] as const;

function isMaskChannel(value: string): value is MaskChannel {
  return (MASK_CHANNELS as readonly string[]).includes(value);
}

/** The mask in `image` for `channel`; an unknown channel reads as luminance, which the server would refuse anyway. */
export function maskPreview(image: HTMLImageElement, channel: string): MaskPreview {
  const chosen: MaskChannel = isMaskChannel(channel) ? channel : "luminance";
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(image, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  let masked = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    const value =
      chosen === "alpha" ? 255 - a : chosen === "red" ? r : chosen === "green" ? g : chosen === "blue" ? b : Math.round(LUMA[0] * r + LUMA[1] * g + LUMA[2] * b);
    if (value >= 128) masked++;
    data[i] = data[i + 1] = data[i + 2] = value;
    data[i + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  return { canvas, coverage: masked / Math.max(1, canvas.width * canvas.height) };
}
