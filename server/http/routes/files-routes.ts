import { Router } from "express";
import { access, readdir, stat } from "node:fs/promises";
import path from "node:path";
import multer from "multer";
import sharp from "sharp";
import type { DataFolders } from "../../storage/data-folders.ts";
import { writeFileAtomic } from "../../storage/atomic-write.ts";
import { HttpError } from "../http-error.ts";

const VIEW_TYPES = ["input", "output", "temp"] as const;

export function filesRoutes(folders: DataFolders, options: { maxUploadBytes: number }): Router {
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: options.maxUploadBytes, files: 1 } });
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
        throw new HttpError(400, "invalid_query", `type must be one of ${VIEW_TYPES.join(", ")}, got "${type}"`, { field: "type" });
      }
      // Refuses names that leave the folder; inputs are then looked up as LoadImage looks them up,
      // so the shipped example pictures show too.
      const own = folders.resolve(type as (typeof VIEW_TYPES)[number], filename, subfolder);
      const file = type === "input" ? folders.inputPath(subfolder ? `${subfolder}/${filename}` : filename) : own;
      try {
        if (!(await stat(file)).isFile()) throw new Error("not a file");
      } catch {
        throw new HttpError(404, "file_not_found", `no ${type} file named "${filename}"`, { field: "filename" });
      }
      res.sendFile(file, { dotfiles: "deny", headers: { "Cache-Control": "no-cache" } });
    });

  async function saveUpload(file: Express.Multer.File | undefined, fields: Record<string, string | undefined>) {
    if (!file) {
      throw new HttpError(400, "invalid_upload", 'no file received: send the image in the multipart field "image"', { field: "image" });
    }
    let format: string | undefined;
    try {
      const metadata = await sharp(file.buffer).metadata();
      format = metadata.format;
      if (!metadata.width || !metadata.height) throw new Error("no dimensions");
    } catch {
      throw new HttpError(400, "invalid_image", `"${file.originalname}" is not an image that can be decoded (PNG, JPEG, WebP, …)`, {
        field: "image",
      });
    }
    const type = fields.type ?? "input";
    if (type !== "input" && type !== "temp") {
      throw new HttpError(400, "invalid_upload", `type must be "input" or "temp", got "${type}"`, { field: "type" });
    }
    const subfolder = fields.subfolder ?? "";
    const overwrite = fields.overwrite === "true" || fields.overwrite === "1";
    const base = path.basename(file.originalname || `upload.${format ?? "png"}`).replace(/[^A-Za-z0-9._ -]+/g, "_") || "upload.png";
    let name = base;
    if (!overwrite) {
      // Never replace an existing input silently: "name (1).png", "name (2).png", …
      const ext = path.extname(base);
      const stem = base.slice(0, base.length - ext.length);
      for (let i = 1; i < 10_000 && (await exists(folders.resolve(type, name, subfolder))); i++) name = `${stem} (${i})${ext}`;
    }
    await writeFileAtomic(folders.resolve(type, name, subfolder), file.buffer);
    return { name, subfolder, type };
  }
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g|webp|gif|tiff?|avif)$/i;

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

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
