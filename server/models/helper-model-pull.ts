/**
 * What `maskflow models pull NAME` fetches for a helper model: the catalog's files at its revision, each checked
 * against the size and sha256 the catalog records before anything is downloaded, so a repository that changed
 * (or a mirror at HF_ENDPOINT serving other bytes) is refused with both values named. The download itself,
 * resuming and re-hashing, is pullModel's, as for the Stable Diffusion export.
 */
import type { HubClient, HubFile } from "./hub-client.ts";
import { FileVerificationError, HubError } from "./hub-errors.ts";
import type { HelperModel } from "./helper-model-catalog.ts";
import type { PullPlan } from "./pull-model.ts";

export async function planHelperPull(client: HubClient, model: HelperModel, revision: string = model.revision): Promise<PullPlan> {
  const commit = await client.resolveRevision(model.repo, revision);
  const listed = new Map((await client.listFiles(model.repo, commit ?? revision)).map((file) => [file.path, file]));
  const files: HubFile[] = [];
  for (const known of model.files) {
    const file = listed.get(known.path);
    if (!file) throw new HubError(404, `${model.repo}@${revision} has no ${known.path}, which ${model.name} needs`);
    if (file.size !== known.size || (file.sha256 !== undefined && file.sha256 !== known.sha256)) {
      throw new FileVerificationError(
        known.path,
        `${model.repo}@${revision}: ${known.path} is listed with ${file.size} bytes, sha256 ${file.sha256 ?? "(none)"}; ` +
          `Maskflow knows it as ${known.size} bytes, sha256 ${known.sha256}. Not downloading a file that differs from the one checked ` +
          "(the repository, or the mirror at HF_ENDPOINT, has changed it)",
      );
    }
    // The catalog's digest is what the download is verified against.
    files.push({ path: known.path, size: known.size, sha256: known.sha256 });
  }
  return { repo: model.repo, revision, commit, files, totalBytes: files.reduce((sum, file) => sum + file.size, 0) };
}
