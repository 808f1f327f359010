/**
 * Tiled VAE encode and decode, after diffusers' AutoencoderKL.tiled_encode / tiled_decode: the input is cut
 * into tiles of the VAE's own sample size (512 pixels for SD, 64 latents) overlapping by a quarter, each tile
 * runs through the VAE alone, and each output tile is blended linearly into its upper and left neighbours over
 * a quarter of a tile before its top-left three quarters are kept. The VAE's memory then depends on the tile,
 * not on the picture: a 2048² decode holds one 512² tile's activations instead of sixteen times them.
 *
 * Tiled is not equal to untiled: each tile's convolutions and group norms see only the tile, so values near
 * tile edges differ, and the blend hides the seams. diffusers' blend is reproduced as it runs, including that
 * it blends each tile in place, so a tile's upper neighbour has already been blended with its own neighbours.
 */

const f32 = Math.fround;

/** "auto": tile from twice the model's native size on either side; "on": whenever the picture exceeds one tile. */
export const VAE_TILING_MODES = ["auto", "on", "off"] as const;
export type VaeTiling = (typeof VAE_TILING_MODES)[number];

/** diffusers' tile_overlap_factor. */
const OVERLAP = 0.25;

/** One NCHW tensor of batch 1, as flat float32. */
export interface Planes {
  readonly data: Float32Array;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/**
 * Whether a picture of width × height pixels is processed in tiles. Auto starts at twice the native size (the
 * UNet's sample size in pixels, 512 for SD 1.5): below it the untiled VAE needs less memory than the UNet at the
 * same size, and the result stays diffusers' untiled one; from it on the VAE alone would pass the UNet's bound.
 */
export function usesVaeTiles(mode: VaeTiling, width: number, height: number, tilePixels: number, nativePixels: number): boolean {
  if (mode === "off") return false;
  const largest = Math.max(width, height);
  if (mode === "on") return largest > tilePixels;
  return largest >= 2 * nativePixels && largest > tilePixels;
}

/**
 * Runs `run` on overlapping tiles of `input` and blends the results as diffusers does. `inTile` is the tile's
 * side in input units, `ratio` output units per input unit (1/8 to encode SD's pixels, 8 to decode latents).
 */
export async function runTiled(
  input: Planes,
  options: { inTile: number; ratio: number; outChannels: number },
  run: (tile: Planes) => Promise<Float32Array>,
): Promise<Planes> {
  const { inTile, ratio, outChannels } = options;
  const outTile = Math.round(inTile * ratio);
  const stride = Math.trunc(inTile * (1 - OVERLAP));
  const blendExtent = Math.trunc(outTile * OVERLAP);
  const rowLimit = outTile - blendExtent;
  // Each kept part must be exactly one stride of output, or the kept parts would not tile the output.
  if (stride < 1 || rowLimit < 1 || stride * ratio !== rowLimit) {
    throw new Error(`a VAE tile of ${inTile} (${outTile} out) cannot overlap by a quarter on whole units`);
  }
  const outHeight = Math.round(input.height * ratio);
  const outWidth = Math.round(input.width * ratio);
  const out = new Float32Array(outChannels * outHeight * outWidth);
  const outPlane = outHeight * outWidth;

  let above: Planes[] = [];
  for (let i = 0, row = 0; i < input.height; i += stride, row++) {
    const current: Planes[] = [];
    for (let j = 0, column = 0; j < input.width; j += stride, column++) {
      const tileIn = crop(input, i, j, Math.min(inTile, input.height - i), Math.min(inTile, input.width - j));
      const data = await run(tileIn);
      const tile: Planes = { data, channels: outChannels, height: Math.round(tileIn.height * ratio), width: Math.round(tileIn.width * ratio) };
      if (data.length !== outChannels * tile.height * tile.width) {
        throw new Error(`VAE tile ${tileIn.width}×${tileIn.height} gave ${data.length} values; expected ${outChannels}×${tile.width}×${tile.height}`);
      }
      if (row > 0) blendVertical(above[column], tile, blendExtent);
      if (column > 0) blendHorizontal(current[column - 1], tile, blendExtent);
      current.push(tile);
      // Keep the tile's top-left rowLimit × rowLimit (all of it at the right and bottom edges).
      const top = row * rowLimit;
      const left = column * rowLimit;
      const keepHeight = Math.min(rowLimit, tile.height, outHeight - top);
      const keepWidth = Math.min(rowLimit, tile.width, outWidth - left);
      for (let c = 0; c < outChannels; c++) {
        for (let y = 0; y < keepHeight; y++) {
          const from = c * tile.height * tile.width + y * tile.width;
          out.set(tile.data.subarray(from, from + keepWidth), c * outPlane + (top + y) * outWidth + left);
        }
      }
    }
    above = current;
  }
  return { data: out, channels: outChannels, height: outHeight, width: outWidth };
}

function crop(input: Planes, top: number, left: number, height: number, width: number): Planes {
  const data = new Float32Array(input.channels * height * width);
  for (let c = 0; c < input.channels; c++) {
    for (let y = 0; y < height; y++) {
      const from = c * input.height * input.width + (top + y) * input.width + left;
      data.set(input.data.subarray(from, from + width), (c * height + y) * width);
    }
  }
  return { data, channels: input.channels, height, width };
}

/** b's first rows fade in from a's last rows: b[y] = a[-extent + y] × (1 − y/extent) + b[y] × y/extent, in float32. */
function blendVertical(a: Planes, b: Planes, blendExtent: number): void {
  const extent = Math.min(a.height, b.height, blendExtent);
  for (let y = 0; y < extent; y++) {
    const keep = f32(1 - y / extent);
    const take = f32(y / extent);
    for (let c = 0; c < b.channels; c++) {
      const aRow = (c * a.height + a.height - extent + y) * a.width;
      const bRow = (c * b.height + y) * b.width;
      // Tiles in one column have the same width.
      for (let x = 0; x < b.width; x++) b.data[bRow + x] = f32(a.data[aRow + x] * keep) + f32(b.data[bRow + x] * take);
    }
  }
}

function blendHorizontal(a: Planes, b: Planes, blendExtent: number): void {
  const extent = Math.min(a.width, b.width, blendExtent);
  for (let x = 0; x < extent; x++) {
    const keep = f32(1 - x / extent);
    const take = f32(x / extent);
    for (let c = 0; c < b.channels; c++) {
      for (let y = 0; y < b.height; y++) {
        const aAt = (c * a.height + y) * a.width + a.width - extent + x;
        const bAt = (c * b.height + y) * b.width + x;
        b.data[bAt] = f32(a.data[aAt] * keep) + f32(b.data[bAt] * take);
      }
    }
  }
}
