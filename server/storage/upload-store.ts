/**
 * Writes uploaded pictures. Without overwrite, a name is taken by exclusive creation (a hard link fails
 * with EEXIST when the name exists), so twenty simultaneous uploads of race.png become race.png,
 * race (1).png … race (19).png, each answer naming its own file; there is no check-then-write gap.
 * With overwrite, a rename replaces the file whole. Either way readers never see a half-written picture.
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { HttpError } from "../http/http-error.ts";
import { resolveInside } from "./safe-path.ts";

/** Upper bound on "name (n).ext" tries, so a folder full of one name cannot keep a request looping. */
export const MAX_NUMBERED_NAMES = 1000;

/** Stores `bytes` as `name` in `folder`/`subfolder`; returns the name it was stored under. */
export async function storeUpload(folder: string, subfolder: string, name: string, bytes: Uint8Array, overwrite: boolean): Promise<string> {
  const dir = subfolder ? resolveInside(folder, subfolder, "subfolder") : path.resolve(folder);
  await mkdir(dir, { recursive: true });
  // Hidden (listings skip dotfiles) and in the same folder, so the link or rename stays on one file system.
  const temp = path.join(dir, `.upload-${randomBytes(8).toString("hex")}.tmp`);
  await writeFile(temp, bytes);
  try {
    if (overwrite) {
      await rename(temp, resolveInside(dir, name, "filename"));
      return name;
    }
    const extension = path.extname(name);
    const stem = name.slice(0, name.length - extension.length);
    for (let n = 0; n < MAX_NUMBERED_NAMES; n++) {
      const candidate = n === 0 ? name : `${stem} (${n})${extension}`;
      try {
        await link(temp, resolveInside(dir, candidate, "filename"));
        return candidate;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    }
    throw new HttpError(409, "name_taken", `"${name}" and its ${MAX_NUMBERED_NAMES - 1} numbered variants are all taken: upload under another name`, {
      field: "image",
    });
  } finally {
    await rm(temp, { force: true });
  }
}
