/**
 * POST /api/segment: the mask painter's click-to-select. The body names a picture in the input folder (as a
 * LoadImage does) and gives clicks and a box in its pixels; the answer is the proposed mask as a greyscale PNG
 * (white = selected), with the decoder's score and whether the picture's embedding was reused in headers.
 * Mounted under /api, so the key gate and the JSON size limit apply; the picture's size is checked from its header
 * before it is decoded (MASKFLOW_MAX_PIXELS), and at most 64 clicks are taken.
 */
import { readFile } from "node:fs/promises";
import { Router } from "express";
import sharp from "sharp";
import { z } from "zod";
import { decodePicture } from "../../../nodes/image/decode-picture.ts";
import { checkPicturePixels, maxPixels, PixelLimitError } from "../../../nodes/image/pixel-limit.ts";
import { ModelLoadError } from "../../engines/onnx/onnx-session.ts";
import { type SegmentEngine, SegmentPromptError } from "../../engines/segment/segment-engine.ts";
import { MOBILE_SAM } from "../../models/helper-model-catalog.ts";
import type { DataFolders } from "../../storage/data-folders.ts";
import { HttpError } from "../http-error.ts";
import { parseBody } from "../request-body.ts";

const MAX_POINTS = 64;
const coordinate = z.number().finite().nonnegative().max(1_000_000);

const segmentRequest = z.strictObject({
  image: z.string().min(1, "the picture's name in the input folder").max(255),
  points: z.array(z.strictObject({ x: coordinate, y: coordinate, positive: z.boolean() })).max(MAX_POINTS, `at most ${MAX_POINTS} points`).default([]),
  box: z.strictObject({ left: coordinate, top: coordinate, right: coordinate, bottom: coordinate }).optional(),
  // A folder under the models folder only: a request never names a path on the server.
  model: z.string().max(100).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a folder name under the models folder (letters, digits, . _ -)").optional(),
});

export type SegmentRequestBody = z.input<typeof segmentRequest>;

export function segmentRoutes(folders: DataFolders, engine: SegmentEngine): Router {
  return Router().post("/segment", async (req, res) => {
    const body = parseBody(segmentRequest, req.body ?? {}, "segment request");
    const file = await readPicture(folders, body.image);
    try {
      await checkPicturePixels(file, "image", maxPixels());
    } catch (error) {
      if (error instanceof PixelLimitError) throw new HttpError(413, "picture_too_large", error.message);
      throw error;
    }
    let picture;
    try {
      picture = (await decodePicture(file, "image")).image;
    } catch (error) {
      if (error instanceof PixelLimitError) throw new HttpError(413, "picture_too_large", error.message);
      throw new HttpError(400, "invalid_image", `image: "${body.image}" is not a picture sharp can read (${(error as Error).message})`);
    }
    let result;
    try {
      result = await engine.segment({ picture, prompt: { points: body.points, box: body.box }, model: body.model });
    } catch (error) {
      if (error instanceof SegmentPromptError) throw new HttpError(400, "invalid_prompt", error.message);
      if (error instanceof ModelLoadError) {
        const name = body.model ?? MOBILE_SAM.name;
        throw new HttpError(503, "model_unavailable", `${error.message}${name === MOBILE_SAM.name ? "" : ` (model "${name}")`}`, { pull: `npx maskflow models pull ${MOBILE_SAM.name}` });
      }
      throw error;
    }
    const png = await sharp(result.mask.data, { raw: { width: result.mask.width, height: result.mask.height, channels: 1 } }).png({ compressionLevel: 3 }).toBuffer();
    res
      .type("image/png")
      .set({
        "cache-control": "no-store",
        "x-maskflow-score": result.score.toFixed(4),
        "x-maskflow-embedding": result.embeddingCached ? "cached" : "computed",
        "x-maskflow-decoder-ms": result.decoderMs.toFixed(1),
      })
      .send(png);
  });
}

async function readPicture(folders: DataFolders, name: string): Promise<Buffer> {
  let location: string;
  try {
    location = folders.inputPath(name);
  } catch (error) {
    throw new HttpError(400, "invalid_request", `image: ${(error as Error).message}`);
  }
  try {
    return await readFile(location);
  } catch {
    throw new HttpError(404, "not_found", `image: "${name}" is not a file in the input folder`);
  }
}
