import { describe, expect, it } from "vitest";
import { craftNodes } from "../nodes/craft-nodes.ts";
import { BlendImagesNode } from "../nodes/image/blend-images.ts";
import { CompositeImageNode } from "../nodes/image/composite-image.ts";
import { PadImageNode } from "../nodes/image/pad-image.ts";
import type { CropRegion } from "../nodes/mask/crop-region.ts";
import { CropToMaskNode, planCrop } from "../nodes/mask/crop-to-mask.ts";
import { ImageToMaskNode } from "../nodes/mask/image-to-mask.ts";
import { MaskToImageNode } from "../nodes/mask/mask-to-image.ts";
import { StitchNode } from "../nodes/mask/stitch.ts";
import type { AnyNodeDefinition } from "../nodes/node-definition.ts";
import type { ImageBatch, Mask, RgbImage } from "../nodes/socket-types.ts";
import { createTestContext } from "./helpers/node-context.ts";

async function run<T>(node: AnyNodeDefinition, inputs: Record<string, unknown>): Promise<T> {
  return (await node.run(inputs, await createTestContext())) as T;
}

/** Pixel (x, y) = (x mod 256, y mod 256, (x + y) mod 251): any pixel says where it came from. */
function coordinateImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x % 256, y % 256, (x + y) % 251], (y * width + x) * 3);
  return { width, height, data };
}

function solidImage(width: number, height: number, rgb: readonly [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
}

function rectMask(width: number, height: number, left: number, top: number, w: number, h: number): Mask {
  const data = new Uint8Array(width * height);
  for (let y = top; y < top + h; y++) data.fill(255, y * width + left, y * width + left + w);
  return { width, height, data };
}

function pixelAt(image: RgbImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [...image.data.subarray(i, i + 3)];
}

describe("craft nodes", () => {
  it("lists each node once, with its category", () => {
    expect(craftNodes.map((node) => [node.type, node.category])).toEqual([
      ["PadImage", "image"],
      ["Composite", "image"],
      ["Blend", "image"],
      ["CropToMask", "mask"],
      ["Stitch", "mask"],
      ["MaskToImage", "mask"],
      ["ImageToMask", "mask"],
      ["ClassicalFill", "fill"],
    ]);
  });
});

describe("CropToMask", () => {
  it("cuts a 512×512 crop around a 200×200 mask in a 2048×2048 picture, box = mask + padding", async () => {
    const image = coordinateImage(2048, 2048);
    const mask = rectMask(2048, 2048, 900, 700, 200, 200);

    const out = await run<{ image: ImageBatch; mask: Mask; crop: CropRegion }>(CropToMaskNode, {
      image: [image], mask, padding: 32, context: 1, shape: "square", size: 512,
    });

    expect(out.crop).toEqual({ x: 868, y: 668, width: 264, height: 264, originalWidth: 2048, originalHeight: 2048, scaledWidth: 512, scaledHeight: 512 });
    expect([out.image[0].width, out.image[0].height, out.mask.width, out.mask.height]).toEqual([512, 512, 512, 512]);
    // The mask's 200 px sit in the middle of the 264 px box: 32 px of keep on each side, scaled × 512/264.
    expect(out.mask.data[256 * 512 + 256]).toBe(255);
    expect(out.mask.data[256 * 512 + 30]).toBe(0);
    expect(out.mask.data[30 * 512 + 256]).toBe(0);
  });

  it("shifts the box inside the picture at the border and still holds the mask", () => {
    const region = planCrop({ left: 0, top: 1000, right: 50, bottom: 1100 }, 2048, 1200, { padding: 32, context: 1, shape: "square", size: 512 });
    expect(region).toMatchObject({ x: 0, width: 164, height: 164 });
    expect(region.y + region.height).toBeLessThanOrEqual(1200);
    expect(region.y).toBeLessThanOrEqual(1000);
  });

  it("keep aspect: long side = size, short side a multiple of 8, box of the same aspect", () => {
    const region = planCrop({ left: 100, top: 100, right: 500, bottom: 200 }, 1000, 1000, { padding: 0, context: 1, shape: "keep aspect", size: 512 });
    expect([region.scaledWidth, region.scaledHeight]).toEqual([512, 128]);
    expect(region.width / region.height).toBeCloseTo(4, 1);
    expect(region.width).toBeGreaterThanOrEqual(400);
  });

  it("shrinks a box larger than the picture, never below the mask", () => {
    const region = planCrop({ left: 10, top: 10, right: 290, bottom: 290 }, 1000, 300, { padding: 64, context: 1, shape: "square", size: 512 });
    expect([region.width, region.height]).toEqual([300, 300]);
    expect([region.x, region.y]).toEqual([0, 0]);
  });

  it("names the mask when it is empty", async () => {
    await expect(
      run(CropToMaskNode, { image: [solidImage(64, 64, [1, 2, 3])], mask: rectMask(64, 64, 0, 0, 0, 0), padding: 8, context: 1, shape: "square", size: 512 }),
    ).rejects.toThrow(/`mask` is empty/);
  });
});

describe("Stitch", () => {
  const size = 1024;
  const mask = rectMask(size, size, 400, 300, 200, 200);
  const original = coordinateImage(size, size);

  async function cropAndStitch(inpaint: (crop: RgbImage) => RgbImage, cropSize: number, padding: number, feather: number) {
    const crop = await run<{ image: ImageBatch; crop: CropRegion }>(CropToMaskNode, {
      image: [original], mask, padding, context: 1, shape: "square", size: cropSize,
    });
    const inpainted = crop.image.map(inpaint);
    const { image } = await run<{ image: ImageBatch }>(StitchNode, { original: [original], inpainted, mask, crop: crop.crop, feather });
    return { region: crop.crop, stitched: image };
  }

  it("puts every pixel of an unscaled crop back at its exact place", async () => {
    // 200 + 2 × 28 = 256 = size: no scaling, so each marker pixel must land exactly.
    const marker = coordinateImage(256, 256);
    const { region, stitched } = await cropAndStitch(() => marker, 256, 28, 0);
    expect([region.x, region.y, region.width]).toEqual([372, 272, 256]);
    for (const [x, y] of [[400, 300], [599, 499], [500, 400], [450, 333]] as const) {
      expect(pixelAt(stitched[0], x, y)).toEqual(pixelAt(marker, x - region.x, y - region.y));
    }
    expect(pixelAt(stitched[0], 399, 300)).toEqual(pixelAt(original, 399, 300));
  });

  it("lands a marker block of a scaled crop at the box's coordinates", async () => {
    // Box 264 px scaled to 512: a white block at crop pixels 256…320 lands at box + 256 × 264/512.
    const { region, stitched } = await cropAndStitch(
      () => {
        const crop = solidImage(512, 512, [0, 0, 0]);
        for (let y = 256; y < 320; y++) for (let x = 256; x < 320; x++) crop.data.set([255, 255, 255], (y * 512 + x) * 3);
        return crop;
      },
      512,
      32,
      0,
    );
    const scale = region.width / 512;
    const centre = (v: number) => Math.round(v + 288 * scale);
    expect(pixelAt(stitched[0], centre(region.x), centre(region.y))).toEqual([255, 255, 255]);
    // 30 px left of the centre is 13 px clear of the block: past lanczos3's reach.
    expect(pixelAt(stitched[0], centre(region.x) - 30, centre(region.y))).toEqual([0, 0, 0]);
    expect(pixelAt(stitched[0], centre(region.x), centre(region.y) + 30)).toEqual([0, 0, 0]);
  });

  it("keeps the original byte for byte outside the feathered mask, one output per inpainted image", async () => {
    const { region, stitched } = await cropAndStitch((crop) => solidImage(crop.width, crop.height, [255, 0, 255]), 512, 32, 8);
    expect(stitched).toHaveLength(1);
    const out = stitched[0];
    let changedOutside = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        // The feather (sigma 4) has died out 16 px from the mask.
        const nearMask = x >= 384 && x < 616 && y >= 284 && y < 516;
        if (nearMask) continue;
        if (pixelAt(out, x, y).join() !== pixelAt(original, x, y).join()) changedOutside++;
      }
    }
    expect(changedOutside).toBe(0);
    expect(region.x).toBeLessThan(384);
    expect(pixelAt(out, 500, 400)).toEqual([255, 0, 255]);
  });

  it("feathers the seam monotonically", async () => {
    const flat = solidImage(size, size, [0, 0, 0]);
    const crop = await run<{ crop: CropRegion }>(CropToMaskNode, { image: [flat], mask, padding: 32, context: 1, shape: "square", size: 512 });
    const { image } = await run<{ image: ImageBatch }>(StitchNode, {
      original: [flat], inpainted: [solidImage(512, 512, [200, 200, 200]), solidImage(512, 512, [100, 100, 100])], mask, crop: crop.crop, feather: 8,
    });
    expect(image).toHaveLength(2);
    const row = Array.from({ length: 41 }, (_, i) => pixelAt(image[0], 380 + i, 400)[0]);
    expect(row[0]).toBe(0);
    expect(row[40]).toBe(200);
    for (let i = 1; i < row.length; i++) expect(row[i]).toBeGreaterThanOrEqual(row[i - 1]);
    expect(new Set(row).size).toBeGreaterThan(8);
  });
});

describe("PadImage", () => {
  it("pads to the exact size with edge pixels and masks the new area, ramping in by feather", async () => {
    const image = coordinateImage(10, 6);
    const { image: padded, mask } = await run<{ image: ImageBatch; mask: Mask }>(PadImageNode, {
      image: [image], left: 4, top: 0, right: 2, bottom: 3, feather: 3, multiple_of_8: false,
    });
    expect([padded[0].width, padded[0].height, mask.width, mask.height]).toEqual([16, 9, 16, 9]);
    expect(pixelAt(padded[0], 0, 0)).toEqual(pixelAt(image, 0, 0));
    expect(pixelAt(padded[0], 15, 8)).toEqual(pixelAt(image, 9, 5));
    expect(pixelAt(padded[0], 4 + 3, 2)).toEqual(pixelAt(image, 3, 2));
    const at = (x: number, y: number) => mask.data[y * 16 + x];
    expect([at(0, 0), at(3, 2), at(14, 2), at(5, 8)]).toEqual([255, 255, 255, 255]);
    // Left side ramp over 3 px: 255·3/4, 255·2/4, 255·1/4, then 0; top not padded: no ramp.
    expect([4, 5, 6, 7, 8].map((x) => at(x, 1))).toEqual([191, 128, 64, 0, 0]);
    expect(at(9, 0)).toBe(0);
  });

  it("gives a hard mask with feather 0 and rounds up to multiples of 8 when asked", async () => {
    const { image: padded, mask } = await run<{ image: ImageBatch; mask: Mask }>(PadImageNode, {
      image: [coordinateImage(10, 6)], left: 3, top: 0, right: 0, bottom: 0, feather: 0, multiple_of_8: true,
    });
    expect([padded[0].width, padded[0].height]).toEqual([16, 8]);
    // Width: only left was padded, so its extra goes left (3 + 3); height: nothing padded, extra goes to the bottom.
    expect([...mask.data.subarray(0, 16)]).toEqual([255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(mask.data[6 * 16 + 8]).toBe(255);
  });
});

describe("Composite", () => {
  it("clips a source placed at negative x, y", async () => {
    const destination = solidImage(8, 8, [10, 10, 10]);
    const source = coordinateImage(4, 4);
    const { image } = await run<{ image: ImageBatch }>(CompositeImageNode, { destination: [destination], source: [source], x: -2, y: -1 });
    expect([image[0].width, image[0].height]).toEqual([8, 8]);
    expect(pixelAt(image[0], 0, 0)).toEqual(pixelAt(source, 2, 1));
    expect(pixelAt(image[0], 1, 2)).toEqual(pixelAt(source, 3, 3));
    expect(pixelAt(image[0], 2, 0)).toEqual([10, 10, 10]);
    expect(pixelAt(image[0], 0, 3)).toEqual([10, 10, 10]);
  });

  it("uses the mask as opacity and leaves the destination alone off the edge", async () => {
    const destination = solidImage(6, 6, [0, 0, 0]);
    const source = solidImage(3, 3, [200, 100, 50]);
    const mask: Mask = { width: 3, height: 3, data: new Uint8Array([255, 0, 255, 0, 255, 0, 255, 0, 255]) };
    const { image } = await run<{ image: ImageBatch }>(CompositeImageNode, { destination: [destination], source: [source], x: 4, y: 4, mask });
    expect(pixelAt(image[0], 4, 4)).toEqual([200, 100, 50]);
    expect(pixelAt(image[0], 5, 4)).toEqual([0, 0, 0]);
    expect(pixelAt(image[0], 5, 5)).toEqual([200, 100, 50]);
    const { image: offEdge } = await run<{ image: ImageBatch }>(CompositeImageNode, { destination: [destination], source: [source], x: 9, y: 0 });
    expect(offEdge[0].data).toEqual(destination.data);
  });
});

describe("Blend", () => {
  const a = coordinateImage(16, 16);
  const b = solidImage(16, 16, [250, 5, 128]);

  it("gives a at factor 0 and b at factor 1 exactly", async () => {
    const zero = await run<{ image: ImageBatch }>(BlendImagesNode, { a: [a], b: [b], factor: 0, mode: "normal" });
    const one = await run<{ image: ImageBatch }>(BlendImagesNode, { a: [a], b: [b], factor: 1, mode: "normal" });
    expect(zero.image[0].data).toEqual(a.data);
    expect(one.image[0].data).toEqual(b.data);
  });

  it("applies the mode, and resizes b to a", async () => {
    const { image: diff } = await run<{ image: ImageBatch }>(BlendImagesNode, { a: [a], b: [solidImage(4, 4, [10, 10, 10])], factor: 1, mode: "difference" });
    expect(pixelAt(diff[0], 3, 12)).toEqual([7, 2, 5]);
    const { image: multiply } = await run<{ image: ImageBatch }>(BlendImagesNode, { a: [solidImage(2, 2, [255, 128, 0])], b: [solidImage(2, 2, [128, 128, 128])], factor: 1, mode: "multiply" });
    expect(pixelAt(multiply[0], 0, 0)).toEqual([128, 64, 0]);
  });
});

describe("MaskToImage / ImageToMask", () => {
  it("round-trips a mask through a grey picture, and picks channels", async () => {
    const mask: Mask = { width: 3, height: 1, data: new Uint8Array([0, 77, 255]) };
    const { image } = await run<{ image: ImageBatch }>(MaskToImageNode, { mask });
    expect([...image[0].data]).toEqual([0, 0, 0, 77, 77, 77, 255, 255, 255]);
    const back = await run<{ mask: Mask }>(ImageToMaskNode, { image, channel: "luminance" });
    expect([...back.mask.data]).toEqual([0, 77, 255]);
    const picture = { width: 2, height: 1, data: new Uint8Array([10, 20, 30, 40, 50, 60]) };
    const green = await run<{ mask: Mask }>(ImageToMaskNode, { image: [picture], channel: "green" });
    expect([...green.mask.data]).toEqual([20, 50]);
  });
});
