/**
 * Seamless colour: the repainted area takes the original's colours, measured on the ring just outside the mask,
 * before paste-back (Inpaint) or Stitch blend it in. The seam is measured as the CIE76 ΔE*ab across the mask's
 * border (test/helpers/seam-delta-e.ts) on three test pictures, with a deliberate colour cast and without one.
 */
import { plainRecipe } from "../server/models/checkpoint/model-recipe.ts";
import { describe, expect, it } from "vitest";
import { pasteBack } from "../nodes/inpaint/paste-back.ts";
import { InpaintNode } from "../nodes/inpaint/inpaint-node.ts";
import { matchColors } from "../nodes/mask/color-match.ts";
import { CropToMaskNode } from "../nodes/mask/crop-to-mask.ts";
import { StitchNode } from "../nodes/mask/stitch.ts";
import type { RgbImage } from "../nodes/socket-types.ts";
import { runCompute } from "../server/compute/compute-pool.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { createTestContext } from "./helpers/node-context.ts";
import { seamDeltaE } from "./helpers/seam-delta-e.ts";
import { modelLikeResult, noCast, seamCases, warmCast } from "./helpers/seam-pictures.ts";

const cases = await seamCases();
const BLUR = 4;
/** Past the blend ramp inside, two pixels out: the colours either side of the seam as the eye meets them. */
const DEPTH = { inside: BLUR + 2, outside: 2 };

function sameOutside(a: RgbImage, b: RgbImage, mask: { data: Uint8Array }): boolean {
  for (let p = 0; p < mask.data.length; p++) {
    if (mask.data[p] >= 128) continue;
    for (let c = 0; c < 3; c++) if (a.data[p * 3 + c] !== b.data[p * 3 + c]) return false;
  }
  return true;
}

describe("colour match at paste-back", () => {
  for (const { name, picture, mask } of cases) {
    it(`${name}: a warm cast's seam drops to within 1 ΔE of the same result without the cast, and the pixels outside the mask stay the original's`, async () => {
      // The new content meets the old at the seam in both: without a cast, that is all the seam holds.
      const floor = seamDeltaE(await pasteBack(picture, modelLikeResult(picture, mask, noCast), mask, BLUR), mask, DEPTH);
      const result = modelLikeResult(picture, mask, warmCast);
      const plain = await pasteBack(picture, result, mask, BLUR);
      const matched = await pasteBack(picture, result, mask, BLUR, { colorMatch: true });
      const [without, withMatch] = [seamDeltaE(plain, mask, DEPTH), seamDeltaE(matched, mask, DEPTH)];
      console.log(`seam ΔE76 ${name}: no cast ${floor.mean.toFixed(2)}, cast ${without.mean.toFixed(2)} (p95 ${without.p95.toFixed(2)}), matched ${withMatch.mean.toFixed(2)} (p95 ${withMatch.p95.toFixed(2)}), ${floor.pairs} pairs`);
      // On the striped texture the stripes dominate each pair, and the cast adds less to the mean than on flat colour.
      expect(without.mean).toBeGreaterThan(floor.mean + 1.5);
      expect(withMatch.mean).toBeLessThan(floor.mean + 1);
      expect(sameOutside(matched, picture, mask)).toBe(true);
    });

    it(`${name}: without a cast the match changes the seam by less than 0.3 ΔE`, async () => {
      const result = modelLikeResult(picture, mask, noCast);
      const plain = seamDeltaE(await pasteBack(picture, result, mask, BLUR), mask, DEPTH);
      const matched = seamDeltaE(await pasteBack(picture, result, mask, BLUR, { colorMatch: true }), mask, DEPTH);
      console.log(`seam ΔE76 ${name} without cast: ${plain.mean.toFixed(2)} → ${matched.mean.toFixed(2)}`);
      expect(Math.abs(matched.mean - plain.mean)).toBeLessThan(0.3);
    });
  }

  it("runs on the compute pool and gives what the function gives; a mask with nothing around it changes nothing", async () => {
    const { picture, mask } = cases[1];
    const input = { reference: picture, candidate: modelLikeResult(picture, mask, warmCast), mask, ring: 8 };
    const pooled = await runCompute("colorMatch", input);
    expect(Buffer.from(pooled.data).equals(Buffer.from(matchColors(input).data))).toBe(true);
    const everything = { ...mask, data: new Uint8Array(mask.data.length).fill(255) };
    expect(Buffer.from(matchColors({ ...input, mask: everything }).data).equals(Buffer.from(input.candidate.data))).toBe(true);
    expect(() => matchColors({ ...input, mask: { width: 8, height: 8, data: new Uint8Array(64) } })).toThrow(/color match: mask is 8×8, the result 256×256/);
  });
});

describe("colour match in Stitch", () => {
  it("a crop inpainted with a warm cast stitches back with the seam of the picture itself; off, the cast shows", async () => {
    const { picture, mask } = cases[1];
    const ctx = await createTestContext();
    const { image: crops, crop } = await CropToMaskNode.run(
      { image: [picture], mask, padding: 24, size: 256, context: 1, shape: "square" } as Parameters<typeof CropToMaskNode.run>[0],
      ctx,
    );
    const [cropped] = crops as RgbImage[];
    // The "model" redraws the whole crop with a cast (its known part too), as an inpainting model's VAE does.
    const castCrop: RgbImage = { ...cropped, data: cropped.data.map((v, i) => Math.max(0, Math.min(255, Math.round(warmCast([v, v, v])[i % 3])))) };
    const stitch = (color_match: boolean) =>
      StitchNode.run({ original: [picture], inpainted: [castCrop], mask, crop, feather: BLUR, color_match }, ctx).then(({ image }) => (image as RgbImage[])[0]);
    const floor = seamDeltaE(picture, mask, DEPTH).mean;
    const [off, on] = [seamDeltaE(await stitch(false), mask, DEPTH).mean, seamDeltaE(await stitch(true), mask, DEPTH).mean];
    console.log(`seam ΔE76 Stitch sky gradient: picture ${floor.toFixed(2)}, cast ${off.toFixed(2)}, matched ${on.toFixed(2)}`);
    expect(off).toBeGreaterThan(floor + 5);
    expect(on).toBeLessThan(floor + 1);
  });
});

describe("colour match on the Inpaint node (tiny model)", () => {
  it("is on by default and measured on the model's own result; color_match false gives the plain paste-back", async () => {
    expect(InpaintNode.inputs.color_match.default).toBe(true);
    const engine = new OnnxEngine({ threads: 1 });
    try {
      const { picture, mask } = cases[1];
      const ctx = await createTestContext({ engines: { local: engine } });
      const modelDir = (await ensureTinyModels()).fp32;
      const run = (color_match: boolean) =>
        InpaintNode.run(
          {
            image: [picture], mask, prompt: { positive: "sky", negative: "" },
            scheduler: { name: "DDIM", steps: 4, guidance: 7.5, strength: 1, seed: 3n },
            // What a linked Load Checkpoint hands on: the model folder.
            backend: "local", model: plainRecipe(modelDir), samples: 1, width: 256, height: 256,
            paste_back: true, mask_blur: BLUR, masked_content: "original", soft_mask: false, color_match,
          },
          ctx,
        ).then(({ images }) => (images as RgbImage[])[0]);
      const [off, on] = [await run(false), await run(true)];
      const floor = seamDeltaE(picture, mask, DEPTH).mean;
      const [offSeam, onSeam] = [seamDeltaE(off, mask, DEPTH).mean, seamDeltaE(on, mask, DEPTH).mean];
      console.log(`seam ΔE76 tiny model on sky: picture ${floor.toFixed(2)}, plain ${offSeam.toFixed(2)}, matched ${onSeam.toFixed(2)}`);
      expect(sameOutside(on, picture, mask) && sameOutside(off, picture, mask)).toBe(true);
      expect(onSeam).toBeLessThan(offSeam);
    } finally {
      await engine.release();
    }
  });
});
