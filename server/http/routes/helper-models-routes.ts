/**
 * GET /api/helper-models: which helper models (click-to-select, learned fill) are installed in the models folder,
 * judged as `maskflow models list` judges them (files and sizes, nothing opened), with the command that pulls a
 * missing one, so the editor can say what its Select tool and LearnedFill need.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { Router } from "express";
import { HELPER_MODELS } from "../../models/helper-model-catalog.ts";
import { listModel } from "../../models/inspect-models.ts";

export interface HelperModelStatus {
  readonly name: string;
  readonly title: string;
  readonly kind: string;
  readonly repo: string;
  readonly bytes: number;
  readonly installed: boolean;
  /** What is wrong with a folder that is there but incomplete. */
  readonly problems: readonly string[];
  readonly pullCommand: string;
}

export async function helperModelStatuses(modelsDir: string): Promise<HelperModelStatus[]> {
  return Promise.all(
    HELPER_MODELS.map(async (model) => {
      const dir = path.join(modelsDir, model.name);
      const present = await stat(dir).then((info) => info.isDirectory(), () => false);
      const listing = present ? await listModel(dir) : undefined;
      return {
        name: model.name,
        title: model.title,
        kind: model.kind,
        repo: model.repo,
        bytes: model.files.reduce((sum, file) => sum + file.size, 0),
        installed: listing?.status === "complete",
        problems: listing?.problems.map((problem) => `${problem.path}: ${problem.detail}`) ?? [],
        pullCommand: `npx maskflow models pull ${model.name}`,
      };
    }),
  );
}

export function helperModelsRoutes(modelsDir: string): Router {
  return Router().get("/helper-models", async (_req, res) => {
    res.json({ modelsDir, models: await helperModelStatuses(modelsDir) });
  });
}
