/**
 * Models from the API: what is installed (as `maskflow models list` judges it) and the pull in progress,
 * what a pull would fetch, and starting or cancelling one. Mounted under /api, so the key and Origin guards
 * of every route apply: a page on another site cannot start a download.
 */
import { Router } from "express";
import { z } from "zod";
import { type ModelPullService, PullFailedError, type PullErrorCode, PullRunningError } from "../../models/model-pull-service.ts";
import { listLoraChoices, listModelChoices } from "../../models/model-names.ts";
import { HttpError } from "../http-error.ts";
import { parseBody } from "../request-body.ts";

const REPO_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const pullRequest = z.strictObject({
  repo: z.string().max(200).regex(REPO_PATTERN, 'a hub repository id "org/name" (letters, digits, . _ -)').optional(),
  revision: z.string().min(1).max(200).regex(/^[^\s/\\][^\s\\]*$/, "a branch, tag or commit, without spaces").optional(),
  name: z.string().max(100).regex(NAME_PATTERN, "a folder name: letters, digits, . _ - (not starting with . _ -)").optional(),
});

/** Hub trouble is a bad gateway (never 401: the editor would take that for its own key being refused). */
const STATUS_OF: Readonly<Record<PullErrorCode, number>> = {
  hub_unreachable: 502,
  hub_denied: 502,
  hub_not_found: 502,
  hub_error: 502,
  disk_full: 507,
  checksum_mismatch: 502,
  download_failed: 502,
  folder_taken: 409,
  build_failed: 500,
};

function httpErrorOf(error: unknown): unknown {
  if (error instanceof PullRunningError) return new HttpError(409, "pull_running", error.message, { pull: error.running });
  if (error instanceof PullFailedError) return new HttpError(STATUS_OF[error.code], error.code, error.message);
  return error;
}

export function modelsRoutes(pulls: ModelPullService): Router {
  return Router()
    .get("/models", async (_req, res) => {
      res.json(await pulls.list());
    })
    .get("/models/pull", (_req, res) => {
      res.json({ pull: pulls.status });
    })
    .get("/models/pull/preview", async (req, res) => {
      const query = parseBody(pullRequest, { ...req.query }, "query");
      try {
        res.json(await pulls.preview(query));
      } catch (error) {
        throw httpErrorOf(error);
      }
    })
    .post("/models/pull", async (req, res) => {
      const body = parseBody(pullRequest, req.body ?? {}, "pull request");
      try {
        res.status(202).json({ pull: await pulls.start(body) });
      } catch (error) {
        throw httpErrorOf(error);
      }
    })
    .delete("/models/pull", async (_req, res) => {
      const pull = await pulls.cancel();
      if (!pull) throw new HttpError(404, "no_pull", "no model pull is running");
      res.json({ pull });
    });
}

/**
 * GET /models/checkpoints: what a CheckpointLoader may name, for its combo: checkpoint files in the models folder's
 * checkpoints/ subfolder, then model folders; GET /models/loras: the LoRA files of its loras/ subfolder. Names only
 * (never a server path). Always mounted: they need no pull service, only the folder the local engine resolves names in.
 */
export function checkpointChoicesRoutes(modelsDir: () => string): Router {
  return Router()
    .get("/models/checkpoints", async (_req, res) => {
      res.json({ checkpoints: await listModelChoices(modelsDir()) });
    })
    .get("/models/loras", async (_req, res) => {
      res.json({ loras: await listLoraChoices(modelsDir()) });
    });
}
