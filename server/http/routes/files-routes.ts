import { Router } from "express";
import { open, readdir } from "node:fs/promises";
import path from "node:path";
import multer from "multer";
import { checkPicturePixels, PixelLimitError } from "../../../nodes/image/pixel-limit.ts";
import type { DataFolders } from "../../storage/data-folders.ts";
import { ALLOWED_PICTURES, describeNonPicture, PICTURE_EXTENSIONS, type PictureType, SNIFF_BYTES, sniffPicture } from "../../storage/picture-type.ts";
import { checkNameLength, MAX_NAME_CHARS, MAX_SUBFOLDER_CHARS, uploadName, uploadSubfolder } from "../../storage/upload-names.ts";
import { storeUpload } from "../../storage/upload-store.ts";
import { HttpError } from "../http-error.ts";
import { NO_CONTENT_CSP } from "../security-headers.ts";

const VIEW_TYPES = ["input", "output", "temp"] as const;

export function filesRoutes(folders: DataFolders, options: { maxUploadBytes: number }): Router {
  // One file and a few short fields: anything more is not an upload from the editor or a ComfyUI client.
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: options.maxUploadBytes, files: 1, fields: 8, fieldSize: 4096, parts: 9 },
  });
  const receive = upload.single("image");

  return Router()
    .get("/files", async (req, res) => {
      const type = typeof req.query.type === "string" ? req.query.type : "input";
      if (type !== "input" && type !== "output") {
        throw new HttpError(400, "invalid_query", `type must be "input" or "output", got "${type}"`, { field: "type" });
      }
      res.json(await listImages(type === "input" ? [folders.input, ...folders.extraInputRoots] : [folders.output]));
    })
    .post("/upload", (req, res, next) => {
      receive(req, res, (error: unknown) => {
        if (error instanceof multer.MulterError) {
          const message =
            error.code === "LIMIT_FILE_SIZE"
              ? `image is larger than the upload limit of ${Math.round(options.maxUploadBytes / 1024 / 1024)} MB`
              : `upload field "${error.field ?? "image"}": ${error.message}; send one file in the multipart field "image"`;
          next(new HttpError(error.code === "LIMIT_FILE_SIZE" ? 413 : 400, "invalid_upload", message, { field: "image" }));
          return;
        }
        if (error) return next(error);
        saveUpload(req.file, req.body as Record<string, string | undefined>).then((saved) => res.json(saved), next);
      });
    })
    .get("/view", async (req, res) => {
      const filename = typeof req.query.filename === "string" ? req.query.filename : "";
      const type = typeof req.query.type === "string" ? req.query.type : "output";
      const subfolder = typeof req.query.subfolder === "string" ? req.query.subfolder : "";
      if (!(VIEW_TYPES as readonly string[]).includes(type)) {
        throw new HttpError(400, "invalid_query", `type must be one of ${VIEW_TYPES.join(", ")}, got "${type.slice(0, 40)}"`, { field: "type" });
      }
      // A name may carry its folder (examples/room.png), hence more room than an upload's own name.
      checkNameLength(filename, "filename", MAX_NAME_CHARS + MAX_SUBFOLDER_CHARS + 1);
      checkNameLength(subfolder, "subfolder", MAX_SUBFOLDER_CHARS);
      // Refuses names that leave the folder; inputs are then looked up as LoadImage looks them up,
      // so the shipped example pictures show too.
      const own = folders.resolve(type as (typeof VIEW_TYPES)[number], filename, subfolder);
      const file = type === "input" ? folders.inputPath(subfolder ? `${subfolder}/${filename}` : filename) : own;
      const picture = await pictureTypeOf(file);
      if (picture === "missing") {
        throw new HttpError(404, "file_not_found", `no ${type} file named "${filename.slice(0, 200)}"`, { field: "filename" });
      }
      if (picture === "not-a-picture") {
        throw new HttpError(415, "not_a_picture", `"${filename.slice(0, 200)}" is not a ${ALLOWED_PICTURES} picture; only pictures are served`, {
          field: "filename",
        });
      }
      // The type is what the bytes are, never the name's guess; nothing served here may run as a page.
      res.sendFile(file, {
        dotfiles: "deny",
        headers: { "Content-Type": picture, "Cache-Control": "no-cache", "Content-Security-Policy": NO_CONTENT_CSP },
      });
    });

  async function saveUpload(file: Express.Multer.File | undefined, fields: Record<string, string | undefined>) {
    if (!file) {
      throw new HttpError(400, "invalid_upload", 'no file received: send the image in the multipart field "image"', { field: "image" });
    }
    const type = fields.type ?? "input";
    if (type !== "input" && type !== "temp") {
      throw new HttpError(400, "invalid_upload", `type must be "input" or "temp", got "${type.slice(0, 40)}"`, { field: "type" });
    }
    const picture = sniffPicture(file.buffer);
    if (!picture) {
      throw new HttpError(400, "invalid_image", `the upload is ${describeNonPicture(file.buffer)}, not a picture: send ${ALLOWED_PICTURES}`, {
        field: "image",
        allowed: Object.keys(PICTURE_EXTENSIONS),
      });
    }
    const name = uploadName(file.originalname, picture);
    const subfolder = uploadSubfolder(fields.subfolder, type === "input" ? await shippedFolders(folders.extraInputRoots) : []);
    // The size comes from the header alone: a small file declaring 16383² pixels is refused before anything decodes it.
    let size: { width: number; height: number } | undefined;
    try {
      size = await checkPicturePixels(file.buffer, "image");
    } catch (error) {
      if (!(error instanceof PixelLimitError)) throw error;
      throw new HttpError(400, "too_many_pixels", error.message, { field: "image", width: error.width, height: error.height, limit: error.limit });
    }
    if (!size?.width || !size.height) {
      throw new HttpError(400, "invalid_image", `the upload starts like a ${picture} but cannot be decoded: send a whole ${ALLOWED_PICTURES} file`, {
        field: "image",
      });
    }
    const overwrite = fields.overwrite === "true" || fields.overwrite === "1";
    const stored = await storeUpload(folders.folder(type), subfolder, name, file.buffer, overwrite);
    return { name: stored, subfolder, type };
  }
}

/** Folders of the read-only input roots (the shipped examples/): an upload there would shadow them for everyone. */
async function shippedFolders(roots: readonly string[]): Promise<string[]> {
  const names: string[] = [];
  for (const root of roots) {
    try {
      for (const entry of await readdir(root, { withFileTypes: true })) if (entry.isDirectory()) names.push(entry.name);
    } catch {
      // A root that is not there shadows nothing.
    }
  }
  return names;
}

// The types /api/view serves (it checks the bytes too).
const IMAGE_EXTENSIONS = /\.(png|jpe?g|webp|gif)$/i;

/** Image files under the folders (two levels deep), as names relative to their folder; the first folder wins a clash. */
async function listImages(roots: readonly string[]): Promise<string[]> {
  const names = new Set<string>();
  for (const root of roots) {
    const walk = async (dir: string, prefix: string, depth: number): Promise<void> => {
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        if (entry.name.startsWith(".")) continue;
        if (entry.isDirectory() && depth < 2) await walk(path.join(dir, entry.name), `${prefix}${entry.name}/`, depth + 1);
        else if (entry.isFile() && IMAGE_EXTENSIONS.test(entry.name)) names.add(prefix + entry.name);
      }
    };
    await walk(root, "", 0);
  }
  return [...names].sort();
}

/** What a file to be served is: a picture type, or why it is not served. */
async function pictureTypeOf(file: string): Promise<PictureType | "missing" | "not-a-picture"> {
  let handle: import("node:fs/promises").FileHandle;
  try {
    handle = await open(file, "r");
  } catch {
    return "missing";
  }
  try {
    if (!(await handle.stat()).isFile()) return "missing";
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(head, 0, SNIFF_BYTES, 0);
    return sniffPicture(head.subarray(0, bytesRead)) ?? "not-a-picture";
  } catch {
    return "missing";
  } finally {
    await handle.close();
  }
}
