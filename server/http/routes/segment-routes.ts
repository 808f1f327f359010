/**
 * POST /api/segment: the mask painter's click-to-select. The body names a picture in the input folder (as a
 * LoadImage does) and gives clicks and a box in its pixels; the answer is the proposed mask as a greyscale PNG
 * (white = selected), with the decoder's score and whether the picture's embedding was reused in headers.
 * Mounted under /api, so the key gate and the JSON size limit apply; the picture's size is checked from its header
 * before it is decoded (MASKFLOW_MAX_PIXELS), and at most 64 clicks are taken.
 */
import { readFile, stat } from "node:fs/promises";
import { Router } from "express";
import sharp from "sharp";
import { z } from "zod";
import { decodePicture } from "../../../nodes/image/decode-picture.ts";
import { checkPicturePixels, maxPixels, PixelLimitError } from "../../../nodes/image/pixel-limit.ts";
import { ModelLoadError } from "../../engines/onnx/onnx-session.ts";
import { type PictureSource, type SegmentEngine, SegmentPromptError } from "../../engines/segment/segment-engine.ts";
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

/** Sizes of pictures decoded before, by file identity: a later click on one is answered without decoding it again. */
const KNOWN_FILES = 64;

export function segmentRoutes(folders: DataFolders, engine: SegmentEngine): Router {
  const known = new Map<string, { width: number; height: number }>();
  return Router().post("/segment", async (req, res) => {
    const body = parseBody(segmentRequest, req.body ?? {}, "segment request");
    const location = inputLocation(folders, body.image);
    const info = await stat(location).catch(() => undefined);
    if (!info?.isFile()) throw new HttpError(404, "not_found", `image: "${body.image}" is not a file in the input folder`);
    // Path, size and modification time name the pixels: an overwritten upload gets a new key.
    const key = `file:${location}:${info.size}:${info.mtimeMs}`;
    const decode = async () => {
      const file = await readFile(location).catch(() => {
        throw new HttpError(404, "not_found", `image: "${body.image}" is not a file in the input folder`);
      });
      try {
        await checkPicturePixels(file, "image", maxPixels());
        return (await decodePicture(file, "image")).image;
      } catch (error) {
        if (error instanceof PixelLimitError) throw new HttpError(413, "picture_too_large", error.message);
        throw new HttpError(400, "invalid_image", `image: "${body.image}" is not a picture sharp can read (${(error as Error).message})`);
      }
    };
    let size = known.get(key);
    let decoded = size ? undefined : await decode();
    if (decoded) {
      size = { width: decoded.width, height: decoded.height };
      known.set(key, size);
      if (known.size > KNOWN_FILES) known.delete(known.keys().next().value!);
    }
    const limit = maxPixels();
    if (size!.width * size!.height > limit) throw new HttpError(413, "picture_too_large", new PixelLimitError("image", size!.width, size!.height, limit).message);
    const source: PictureSource = { key, width: size!.width, height: size!.height, load: async () => (decoded ??= await decode()) };
    let result;
    try {
      result = await engine.segment({ picture: source, prompt: { points: body.points, box: body.box }, model: body.model });
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

function inputLocation(folders: DataFolders, name: string): string {
  try {
    return folders.inputPath(name);
  } catch (error) {
    throw new HttpError(400, "invalid_request", `image: ${(error as Error).message}`);
  }
}
