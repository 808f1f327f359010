import { writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { CropImageNode } from "../nodes/image/crop-image.ts";
import { imageNodes } from "../nodes/image/index.ts";
import { LoadImageNode } from "../nodes/image/load-image.ts";
import { PreviewImageNode } from "../nodes/image/preview-image.ts";
import { readWorkflowFromPng } from "../nodes/image/png-workflow-chunk.ts";
import { ResizeImageNode } from "../nodes/image/resize-image.ts";
import { SaveImageNode } from "../nodes/image/save-image.ts";
import type { ImageRef } from "../nodes/node-definition.ts";
import type { ImageBatch, Mask, RgbImage } from "../nodes/socket-types.ts";
import { createTestContext, type TestContext } from "./helpers/node-context.ts";

/** An image whose pixel (x, y) is (x, y, 7): any pixel says where it came from. */
function coordinateImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set([x, y, 7], (y * width + x) * 3);
  }
  return { width, height, data };
}

function solidImage(width: number, height: number, rgb: readonly [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
}

function pixelAt(image: RgbImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [...image.data.subarray(i, i + 3)];
}

async function placeInput(ctx: TestContext, name: string, bytes: Uint8Array): Promise<void> {
  await writeFile(path.join(ctx.folders.input, name), bytes);
}

async function loadImage(ctx: TestContext, image: string): Promise<{ image: ImageBatch; mask: Mask }> {
  return (await LoadImageNode.run({ image }, ctx)) as { image: ImageBatch; mask: Mask };
}

async function resize(image: RgbImage, width: number, height: number, mode: string, kernel = "lanczos3"): Promise<RgbImage> {
  const ctx = await createTestContext();
  const { image: out } = (await ResizeImageNode.run({ image: [image], width, height, mode, kernel }, ctx)) as { image: ImageBatch };
  expect(out).toHaveLength(1);
  return out[0];
}

describe("image nodes", () => {
  it("publishes every node of the family once, in category image", () => {
    expect(imageNodes.map((node) => node.type)).toEqual(["LoadImage", "SaveImage", "PreviewImage", "ResizeImage", "CropImage"]);
    expect(imageNodes.every((node) => node.category === "image")).toBe(true);
  });
});

describe("LoadImage", () => {
  it("splits a PNG with alpha into RGB and mask = 255 − alpha", async () => {
    const ctx = await createTestContext();
    const rgba = new Uint8Array([10, 20, 30, 255, 40, 50, 60, 0, 70, 80, 90, 128, 100, 110, 120, 1]);
    await placeInput(ctx, "cutout.png", new Uint8Array(await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toBuffer()));

    const { image, mask } = await loadImage(ctx, "cutout.png");

    expect(image).toHaveLength(1);
    expect(image[0].width).toBe(2);
    expect(image[0].height).toBe(2);
    expect([...image[0].data]).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]);
    expect([...mask.data]).toEqual([0, 255, 127, 254]);
  });

  it("gives an all-zero mask for an image without alpha", async () => {
    const ctx = await createTestContext();
    const picture = coordinateImage(5, 3);
    await placeInput(ctx, "opaque.png", new Uint8Array(await sharp(picture.data, { raw: { width: 5, height: 3, channels: 3 } }).png().toBuffer()));

    const { image, mask } = await loadImage(ctx, "opaque.png");

    expect(image[0].data).toEqual(picture.data);
    expect({ width: mask.width, height: mask.height }).toEqual({ width: 5, height: 3 });
    expect(mask.data.every((v) => v === 0)).toBe(true);
  });

  it("turns an EXIF-rotated JPEG upright", async () => {
    const ctx = await createTestContext();
    // Stored 40 × 20, left half red, right half blue; orientation 6 means "rotate 90° clockwise to view",
    // which brings the left half to the top.
    const stored = new Uint8Array(40 * 20 * 3);
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 40; x++) stored.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    }
    const jpeg = await sharp(stored, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    await placeInput(ctx, "phone.jpg", new Uint8Array(jpeg));

    const [upright] = (await loadImage(ctx, "phone.jpg")).image;

    expect([upright.width, upright.height]).toEqual([20, 40]);
    const [topR, , topB] = pixelAt(upright, 10, 5);
    const [bottomR, , bottomB] = pixelAt(upright, 10, 34);
    expect(topR).toBeGreaterThan(200);
    expect(topB).toBeLessThan(50);
    expect(bottomR).toBeLessThan(50);
    expect(bottomB).toBeGreaterThan(200);
  });

  it("names the input and the file when the file is missing", async () => {
    const ctx = await createTestContext();
    await expect(loadImage(ctx, "nowhere.png")).rejects.toThrow(/`image`.*"nowhere\.png"/);
    await expect(loadImage(ctx, "")).rejects.toThrow(/`image` is empty/);
  });

  it("names the input and the file when the file is not an image", async () => {
    const ctx = await createTestContext();
    await placeInput(ctx, "notes.txt", new TextEncoder().encode("not a picture"));
    await expect(loadImage(ctx, "notes.txt")).rejects.toThrow(/LoadImage: input `image` names "notes\.txt", which is not an image/);
  });

  it("changes its fingerprint when the file changes", async () => {
    const ctx = await createTestContext();
    const fingerprint = (): Promise<string> => Promise.resolve(LoadImageNode.fingerprint!({ image: "a.png" }, ctx));
    const missing = await fingerprint();
    await placeInput(ctx, "a.png", new Uint8Array(await sharp(coordinateImage(4, 4).data, { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer()));
    const first = await fingerprint();
    expect(await fingerprint()).toBe(first);
    await placeInput(ctx, "a.png", new Uint8Array(await sharp(coordinateImage(9, 9).data, { raw: { width: 9, height: 9, channels: 3 } }).png().toBuffer()));
    const second = await fingerprint();
    expect(new Set([missing, first, second]).size).toBe(3);
  });
});

describe("SaveImage and PreviewImage", () => {
  it("writes PNGs that decode to the same pixels and carry the workflow", async () => {
    const workflow = { format: "maskflow-workflow", version: 1, nodes: [{ id: "9", type: "SaveImage", inputs: {} }] };
    const ctx = await createTestContext({ workflow });
    const images = [coordinateImage(12, 7), solidImage(3, 5, [200, 100, 50])];

    expect(await SaveImageNode.run({ images, filename_prefix: "room" }, ctx)).toEqual({});

    expect(ctx.shown).toHaveLength(2);
    for (const [i, ref] of ctx.shown.entries()) {
      expect(ref.type).toBe("output");
      expect(ref.filename).toMatch(/^room_.*\.png$/);
      const file = await readShown(ctx, ref);
      const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([images[i].width, images[i].height, 3]);
      expect(new Uint8Array(data)).toEqual(images[i].data);
      expect(readWorkflowFromPng(file)).toEqual(workflow);
    }
  });

  it("previews into the temp folder", async () => {
    const ctx = await createTestContext();
    const image = coordinateImage(6, 6);

    await PreviewImageNode.run({ images: [image] }, ctx);

    expect(ctx.shown).toHaveLength(1);
    expect(ctx.shown[0].type).toBe("temp");
    const { data } = await sharp(await readShown(ctx, ctx.shown[0])).raw().toBuffer({ resolveWithObject: true });
    expect(new Uint8Array(data)).toEqual(image.data);
  });
});

async function readShown(ctx: TestContext, ref: ImageRef): Promise<Uint8Array> {
  const { readFile } = await import("node:fs/promises");
  return new Uint8Array(await readFile(ctx.folders.resolve(ref.type, ref.filename, ref.subfolder)));
}

describe("ResizeImage", () => {
  const wide = solidImage(40, 20, [200, 100, 50]);

  it("stretch gives exactly the size asked for", async () => {
    const out = await resize(wide, 30, 30, "stretch");
    expect([out.width, out.height]).toEqual([30, 30]);
    expect(pixelAt(out, 15, 15)).toEqual([200, 100, 50]);
  });

  it("fit keeps the aspect ratio inside the box", async () => {
    const out = await resize(wide, 30, 30, "fit");
    expect([out.width, out.height]).toEqual([30, 15]);
  });

  it("fill covers the box and crops around the centre", async () => {
    const out = await resize(coordinateImage(40, 20), 20, 20, "fill", "nearest");
    expect([out.width, out.height]).toEqual([20, 20]);
    // The 20 × 20 centre of a 40 × 20 image starts at x = 10.
    expect(pixelAt(out, 0, 0)).toEqual([10, 0, 7]);
    expect(pixelAt(out, 19, 19)).toEqual([29, 19, 7]);
  });

  it("pad letterboxes with black", async () => {
    const out = await resize(wide, 30, 30, "pad");
    expect([out.width, out.height]).toEqual([30, 30]);
    expect(pixelAt(out, 15, 2)).toEqual([0, 0, 0]);
    expect(pixelAt(out, 15, 15)).toEqual([200, 100, 50]);
    expect(pixelAt(out, 15, 27)).toEqual([0, 0, 0]);
  });

  it("nearest repeats pixels when enlarging", async () => {
    const twoPixels: RgbImage = { width: 2, height: 1, data: new Uint8Array([0, 0, 0, 250, 250, 250]) };
    const out = await resize(twoPixels, 4, 1, "stretch", "nearest");
    expect([...out.data]).toEqual([0, 0, 0, 0, 0, 0, 250, 250, 250, 250, 250, 250]);
  });

  it("names the input and the allowed values for an unknown mode", async () => {
    await expect(resize(wide, 30, 30, "squash")).rejects.toThrow(/`mode`.*"stretch", "fit", "fill", "pad"/);
    await expect(resize(wide, 0, 30, "fit")).rejects.toThrow(/`width`.*1 to 8192/);
  });
});

describe("CropImage", () => {
  async function crop(image: RgbImage, box: { x: number; y: number; width: number; height: number }): Promise<RgbImage> {
    const ctx = await createTestContext();
    const { image: out } = (await CropImageNode.run({ image: [image], ...box }, ctx)) as { image: ImageBatch };
    return out[0];
  }

  it("cuts out the box at exact places", async () => {
    const out = await crop(coordinateImage(40, 20), { x: 3, y: 2, width: 4, height: 5 });
    expect([out.width, out.height]).toEqual([4, 5]);
    expect(pixelAt(out, 0, 0)).toEqual([3, 2, 7]);
    expect(pixelAt(out, 3, 4)).toEqual([6, 6, 7]);
    expect(pixelAt(out, 1, 3)).toEqual([4, 5, 7]);
  });

  it("accepts the whole image and refuses a box that leaves it, naming the inputs and the size", async () => {
    const image = coordinateImage(40, 20);
    expect((await crop(image, { x: 0, y: 0, width: 40, height: 20 })).data).toEqual(image.data);
    await expect(crop(image, { x: 30, y: 0, width: 11, height: 5 })).rejects.toThrow(/x=30.*width=11.*40×20/);
    await expect(crop(image, { x: 0, y: 16, width: 5, height: 5 })).rejects.toThrow(/y \+ height ≤ 20/);
  });
});
