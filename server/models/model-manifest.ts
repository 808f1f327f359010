import path from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../storage/atomic-write.ts";
import { readTextIfPresent } from "../storage/read-text-if-present.ts";

/** Written last by `models pull`: its presence means every listed file was downloaded and verified. */
export const MANIFEST_NAME = ".maskflow-model.json";

const ManifestFileSchema = z.object({ path: z.string().min(1), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

const ManifestSchema = z.object({
  format: z.literal(1),
  repo: z.string(),
  revision: z.string(),
  commit: z.string().nullable(),
  endpoint: z.string(),
  downloadedAt: z.string(),
  files: z.array(ManifestFileSchema),
});

export type ManifestFile = z.infer<typeof ManifestFileSchema>;
export type ModelManifest = z.infer<typeof ManifestSchema>;

export async function writeManifest(modelDir: string, manifest: ModelManifest): Promise<void> {
  await writeFileAtomic(path.join(modelDir, MANIFEST_NAME), JSON.stringify(manifest, null, 2) + "\n");
}

/** The folder's manifest, undefined when there is none; throws when it exists but is not one. */
export async function readManifest(modelDir: string): Promise<ModelManifest | undefined> {
  const text = await readTextIfPresent(path.join(modelDir, MANIFEST_NAME));
  if (text === undefined) return undefined;
  const parsed = ManifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path.join(modelDir, MANIFEST_NAME)} is not a Maskflow model manifest: ${parsed.error.message}`);
  return parsed.data;
}
