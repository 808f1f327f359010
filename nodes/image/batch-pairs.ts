import type { ImageBatch, RgbImage } from "../socket-types.ts";

/**
 * Pairs two batches for a two-input node: equal lengths pair up, a batch of one goes with every image
 * of the other; anything else is an error naming both inputs.
 */
export function pairBatches(node: string, firstName: string, first: ImageBatch, secondName: string, second: ImageBatch): [RgbImage, RgbImage][] {
  if (first.length === 0 || second.length === 0) {
    throw new Error(`${node}: input \`${first.length === 0 ? firstName : secondName}\` is an empty batch`);
  }
  if (first.length !== second.length && first.length !== 1 && second.length !== 1) {
    throw new Error(`${node}: input \`${firstName}\` has ${first.length} images and \`${secondName}\` ${second.length}; give equal counts or one of them a single image`);
  }
  const count = Math.max(first.length, second.length);
  return Array.from({ length: count }, (_, i) => [first[first.length === 1 ? 0 : i], second[second.length === 1 ? 0 : i]]);
}
