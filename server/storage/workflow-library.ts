/**
 * Saved workflows by name: the ones shipped in the project's workflows/ folder (read-only) and the
 * user's own in the data folder, which shadow a shipped one of the same name.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { HttpError } from "../http/http-error.ts";
import { writeFileAtomic } from "./atomic-write.ts";

export interface WorkflowListing {
  readonly name: string;
  readonly source: "shipped" | "user";
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$/;

export class WorkflowLibrary {
  constructor(
    readonly shippedFolder: string,
    readonly userFolder: string,
  ) {}

  async list(): Promise<WorkflowListing[]> {
    const user = await jsonNames(this.userFolder);
    const shipped = (await jsonNames(this.shippedFolder)).filter((name) => !user.includes(name));
    return [
      ...shipped.map((name) => ({ name, source: "shipped" as const })),
      ...user.map((name) => ({ name, source: "user" as const })),
    ].sort((a, b) => a.name.localeCompare(b.name));
  }

  async read(name: string): Promise<{ source: "shipped" | "user"; document: unknown }> {
    const file = checkName(name) + ".json";
    for (const [source, folder] of [["user", this.userFolder], ["shipped", this.shippedFolder]] as const) {
      let text: string;
      try {
        text = await readFile(path.join(folder, file), "utf8");
      } catch {
        continue;
      }
      try {
        return { source, document: JSON.parse(text) };
      } catch (error) {
        throw new HttpError(500, "corrupt_workflow", `saved workflow "${name}" is not valid JSON: ${(error as Error).message}`);
      }
    }
    throw new HttpError(404, "workflow_not_found", `no saved workflow named "${name}"`, { name });
  }

  async write(name: string, document: unknown): Promise<void> {
    await writeFileAtomic(path.join(this.userFolder, checkName(name) + ".json"), JSON.stringify(document, null, 2) + "\n");
  }

  async delete(name: string): Promise<void> {
    const bare = checkName(name);
    const file = path.join(this.userFolder, bare + ".json");
    const user = await jsonNames(this.userFolder);
    if (!user.includes(bare)) {
      const shipped = await jsonNames(this.shippedFolder);
      if (shipped.includes(bare)) {
        throw new HttpError(403, "workflow_read_only", `"${name}" ships with Maskflow and cannot be deleted; save a copy under another name instead`, { name });
      }
      throw new HttpError(404, "workflow_not_found", `no saved workflow named "${name}"`, { name });
    }
    await rm(file);
  }
}

function checkName(name: string): string {
  const bare = name.endsWith(".json") ? name.slice(0, -5) : name;
  if (!NAME_PATTERN.test(bare) || bare.includes("..")) {
    throw new HttpError(
      400,
      "invalid_workflow_name",
      `workflow name "${name}" is not allowed: use 1–100 letters, digits, spaces, '_', '-' or '.', starting with a letter or digit`,
      { field: "name" },
    );
  }
  return bare;
}

async function jsonNames(folder: string): Promise<string[]> {
  try {
    return (await readdir(folder)).filter((file) => file.endsWith(".json")).map((file) => file.slice(0, -5));
  } catch {
    return [];
  }
}
