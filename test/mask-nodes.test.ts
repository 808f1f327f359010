import { writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import type { AnyNodeDefinition } from "../nodes/node-definition.ts";
import { FeatherMaskNode } from "../nodes/mask/feather-mask.ts";
import { GrowMaskNode } from "../nodes/mask/grow-mask.ts";
import { maskNodes } from "../nodes/mask/index.ts";
import { InvertMaskNode } from "../nodes/mask/invert-mask.ts";
import { LoadMaskNode } from "../nodes/mask/load-mask.ts";
import { ThresholdMaskNode } from "../nodes/mask/threshold-mask.ts";
import type { Mask } from "../nodes/socket-types.ts";
import { createTestContext } from "./helpers/node-context.ts";

async function runMaskNode(node: AnyNodeDefinition, inputs: Record<string, unknown>): Promise<Mask> {
  const ctx = await createTestContext();
  return ((await node.run(inputs, ctx)) as { mask: Mask }).mask;
}

function squareMask(size: number, left: number, top: number, side: number): Mask {
  const data = new Uint8Array(size * size);
  for (let y = top; y < top + side; y++) data.fill(255, y * size + left, y * size + left + side);
  return { width: size, height: size, data };
}

/** Width and height of the white area, after checking it is one solid rectangle and all else is black. */
function solidRectangle(mask: Mask): { left: number; top: number; width: number; height: number } {
  let left = Infinity;
  let top = Infinity;
  let right = -1;
  let bottom = -1;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      const v = mask.data[y * mask.width + x];
      expect([0, 255]).toContain(v);
      if (v === 255) {
        left = Math.min(left, x);
        right = Math.max(right, x);
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
      }
    }
  }
  const width = right - left + 1;
  const height = bottom - top + 1;
  expect(mask.data.reduce((sum, v) => sum + (v === 255 ? 1 : 0), 0)).toBe(width * height);
  return { left, top, width, height };
}

/** Straightforward max/min over the clipped (2r + 1)² window, to check the fast filter against. */
function bruteForceMorphology(mask: Mask, pixels: number): Uint8Array {
  const r = Math.abs(pixels);
  const out = new Uint8Array(mask.data.length);
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      let best = pixels >= 0 ? 0 : 255;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const sx = x + dx;
          const sy = y + dy;
          if (sx < 0 || sy < 0 || sx >= mask.width || sy >= mask.height) continue;
          const v = mask.data[sy * mask.width + sx];
          best = pixels >= 0 ? Math.max(best, v) : Math.min(best, v);
        }
      }
      out[y * mask.width + x] = best;
    }
  }
  return out;
}

describe("mask nodes", () => {
  it("publishes every node of the family once, in category mask", () => {
    expect(maskNodes.map((node) => node.type)).toEqual(["LoadMask", "GrowMask", "FeatherMask", "InvertMask", "ThresholdMask"]);
    expect(maskNodes.every((node) => node.category === "mask")).toBe(true);
  });
});

describe("InvertMask", () => {
  it("maps every value v to 255 − v", async () => {
    const data = Uint8Array.from({ length: 256 }, (_, i) => i);
    const out = await runMaskNode(InvertMaskNode, { mask: { width: 16, height: 16, data } });
    expect([out.width, out.height]).toEqual([16, 16]);
    expect([...out.data]).toEqual([...data].map((v) => 255 - v));
  });
});

describe("ThresholdMask", () => {
  const ramp: Mask = { width: 16, height: 16, data: Uint8Array.from({ length: 256 }, (_, i) => i) };

  it("sets values ≥ threshold to 255 and the rest to 0", async () => {
    for (const threshold of [1, 128, 255]) {
      const out = await runMaskNode(ThresholdMaskNode, { mask: ramp, threshold });
      expect([...out.data]).toEqual([...ramp.data].map((v) => (v >= threshold ? 255 : 0)));
    }
  });

  it("makes everything 255 at threshold 0", async () => {
    const out = await runMaskNode(ThresholdMaskNode, { mask: ramp, threshold: 0 });
    expect(out.data.every((v) => v === 255)).toBe(true);
  });

  it("names the input and the range for a threshold out of range", async () => {
    await expect(runMaskNode(ThresholdMaskNode, { mask: ramp, threshold: 256 })).rejects.toThrow(/`threshold`.*0 to 255/);
  });
});

describe("GrowMask", () => {
  it("grows a square of side 10 by 5 to side 20, centred", async () => {
    const out = await runMaskNode(GrowMaskNode, { mask: squareMask(64, 20, 20, 10), pixels: 5 });
    expect(solidRectangle(out)).toEqual({ left: 15, top: 15, width: 20, height: 20 });
  });

  it("shrinks a square of side 20 by 5 to side 10, centred", async () => {
    const out = await runMaskNode(GrowMaskNode, { mask: squareMask(64, 20, 20, 20), pixels: -5 });
    expect(solidRectangle(out)).toEqual({ left: 25, top: 25, width: 10, height: 10 });
  });

  it("does not treat the image border as keep area", async () => {
    const full: Mask = { width: 20, height: 12, data: new Uint8Array(240).fill(255) };
    expect((await runMaskNode(GrowMaskNode, { mask: full, pixels: -4 })).data.every((v) => v === 255)).toBe(true);
    const corner = await runMaskNode(GrowMaskNode, { mask: squareMask(32, 0, 0, 6), pixels: -2 });
    expect(solidRectangle(corner)).toEqual({ left: 0, top: 0, width: 4, height: 4 });
  });

  it("matches a brute-force max/min filter on a soft mask with a non-square size", async () => {
    let state = 12345;
    const random = (): number => (state = (state * 1103515245 + 12345) % 2 ** 31) % 256;
    const mask: Mask = { width: 23, height: 17, data: Uint8Array.from({ length: 23 * 17 }, random) };
    for (const pixels of [1, 3, -2, 9, -12]) {
      const out = await runMaskNode(GrowMaskNode, { mask, pixels });
      expect([...out.data], `pixels ${pixels}`).toEqual([...bruteForceMorphology(mask, pixels)]);
    }
  });

  it("leaves the mask as it is at 0 and refuses values out of range", async () => {
    const mask = squareMask(16, 4, 4, 5);
    expect((await runMaskNode(GrowMaskNode, { mask, pixels: 0 })).data).toEqual(mask.data);
    await expect(runMaskNode(GrowMaskNode, { mask, pixels: 300 })).rejects.toThrow(/`pixels`.*-256 to 256/);
  });
});

describe("FeatherMask", () => {
  it("ramps monotonically across the edge", async () => {
    // Left half white, right half black: every row crosses one vertical edge between x = 31 and x = 32.
    const width = 64;
    const data = new Uint8Array(width * 8);
    for (let y = 0; y < 8; y++) data.fill(255, y * width, y * width + 32);
    const out = await runMaskNode(FeatherMaskNode, { mask: { width, height: 8, data }, radius: 8 });

    const row = [...out.data.subarray(4 * width, 5 * width)];
    for (let x = 1; x < width; x++) expect(row[x], `x = ${x}`).toBeLessThanOrEqual(row[x - 1]);
    expect(row[0]).toBe(255);
    expect(row[width - 1]).toBe(0);
    expect(row[31]).toBeLessThan(255);
    expect(row[32]).toBeGreaterThan(0);
    expect(row[26]).toBeGreaterThan(row[31]);
    expect(row[37]).toBeLessThan(row[32]);
  });

  it("leaves the mask as it is at radius 0", async () => {
    const mask = squareMask(16, 4, 4, 5);
    expect((await runMaskNode(FeatherMaskNode, { mask, radius: 0 })).data).toEqual(mask.data);
  });
});

describe("LoadMask", () => {
  const rgba = new Uint8Array([200, 10, 60, 255, 0, 255, 0, 0, 30, 90, 250, 100]);

  async function loadMask(channel: string, file: "rgba" | "rgb" = "rgba"): Promise<Mask> {
    const ctx = await createTestContext();
    const channels = file === "rgba" ? 4 : 3;
    const pixels = file === "rgba" ? rgba : rgba.filter((_, i) => i % 4 !== 3);
    const png = await sharp(pixels, { raw: { width: 3, height: 1, channels } }).png().toBuffer();
    await writeFile(path.join(ctx.folders.input, "mask.png"), png);
    return ((await LoadMaskNode.run({ image: "mask.png", channel }, ctx)) as { mask: Mask }).mask;
  }

  it("reads a colour channel as is", async () => {
    expect([...(await loadMask("red")).data]).toEqual([200, 0, 30]);
    expect([...(await loadMask("green")).data]).toEqual([10, 255, 90]);
    expect([...(await loadMask("blue")).data]).toEqual([60, 0, 250]);
  });

  it("reads luminance as 0.299 R + 0.587 G + 0.114 B", async () => {
    const out = await loadMask("luminance");
    const expected = [0, 1, 2].map((i) => 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);
    out.data.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(1));
  });

  it("reads alpha as 255 − alpha, and no alpha as an empty mask", async () => {
    expect([...(await loadMask("alpha")).data]).toEqual([0, 255, 155]);
    expect([...(await loadMask("alpha", "rgb")).data]).toEqual([0, 0, 0]);
  });

  it("names the input and the allowed values for an unknown channel", async () => {
    await expect(loadMask("hue")).rejects.toThrow(/`channel`.*"alpha", "red", "green", "blue", "luminance"/);
  });
});
