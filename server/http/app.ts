import express, { type Express } from "express";
import { existsSync } from "node:fs";
import type { NodeRegistry } from "../../nodes/registry.ts";
import type { JobQueuePort } from "../queue/job-queue-port.ts";
import type { DataFolders } from "../storage/data-folders.ts";
import type { HistoryStore } from "../storage/history-store.ts";
import type { SettingsStore } from "../storage/settings-store.ts";
import type { WorkflowLibrary } from "../storage/workflow-library.ts";
import { z } from "zod";
import type { ApiKeys } from "./api-keys.ts";
import { jsonBody } from "./json-body.ts";
import { HttpError } from "./http-error.ts";
import { callerOf, requireKey } from "./key-gate.ts";
import type { OriginPolicy } from "./origin-guard.ts";
import { parseBody } from "./request-body.ts";
import { filesRoutes } from "./routes/files-routes.ts";
import { helperModelsRoutes } from "./routes/helper-models-routes.ts";
import { segmentRoutes } from "./routes/segment-routes.ts";
import type { SegmentEngine } from "../engines/segment/segment-engine.ts";
import { batchRoutes } from "./routes/batch-routes.ts";
import { jobsRoutes } from "./routes/jobs-routes.ts";
import { checkpointChoicesRoutes, modelsRoutes } from "./routes/models-routes.ts";
import type { ModelPullService } from "../models/model-pull-service.ts";
import { nodesRoutes } from "./routes/nodes-routes.ts";
import { sessionRoutes } from "./routes/session-routes.ts";
import { settingsRoutes } from "./routes/settings-routes.ts";
import { workflowsRoutes } from "./routes/workflows-routes.ts";
import type { ServerLog } from "../logging/server-log.ts";
import { securityHeaders } from "./security-headers.ts";
import { sendError } from "./send-error.ts";

export interface AppParts {
  readonly log: ServerLog;
  readonly registry: NodeRegistry;
  readonly queue: JobQueuePort;
  readonly history: HistoryStore;
  readonly folders: DataFolders;
  readonly library: WorkflowLibrary;
  readonly settings: SettingsStore;
  /** What GET /api/system reports (version, engines). */
  readonly system: () => Record<string, unknown>;
  /** POST /api/free: unload models and/or drop the output cache. */
  readonly free: (what: { models: boolean; cache: boolean }) => Promise<void>;
  readonly maxUploadBytes: number;
  /** The built editor (vite's dist folder), served at /. */
  readonly clientDir?: string;
  /** MASKFLOW_API_KEYS and the editor sessions opened with them: when there are keys, every API route needs one. */
  readonly keys: ApiKeys;
  /** Which Host and Origin headers a request may carry (loopback names and --allow-host ones). */
  readonly origins: OriginPolicy;
  /** Folders whose paths no error answer may show (the data folder, the project). */
  readonly privateFolders?: readonly string[];
  /** Installed models and pulling one from the hub (/api/models…); absent, those routes are 404. */
  readonly models?: ModelPullService;
  /** The models folder CheckpointLoader names resolve in (the local engine's): GET /api/models/checkpoints lists it. */
  readonly modelsDir?: () => string;
  /** Click-to-select for the mask painter (POST /api/segment, GET /api/helper-models); absent, those routes are 404. */
  readonly segment?: SegmentEngine;
  /** Extra routers mounted at the root (the Segmind-compatible endpoint); each checks the key before its body. */
  readonly extraRoutes?: readonly express.Router[];
}

const freeBody = z.strictObject({ models: z.boolean().optional(), cache: z.boolean().optional() });

export function createApp(parts: AppParts): Express {
  const app = express();
  app.disable("x-powered-by");
  // First of all, for every answer: the security headers, then who may ask at all (Host, Origin).
  app.use(securityHeaders());
  app.use(parts.origins.middleware());
  // Before the JSON parser: the Segmind endpoint reads its body as text to keep 64-bit seeds exact.
  for (const router of parts.extraRoutes ?? []) app.use(router);
  app.use("/api", sessionRoutes(parts.keys));
  // The key before the body: nothing is parsed or inflated for a request that has none.
  // A workflow is at most 4,000,000 characters (server/workflow/workflow-limits.ts); 12 MB holds that in any UTF-8, and
  // a body past it is refused unparsed.
  app.use("/api", requireKey(parts.keys), ...jsonBody("12mb"));

  const api = express.Router();
  api.get("/system", (_req, res) => void res.json(parts.system()));
  api.post("/free", async (req, res) => {
    const body = parseBody(freeBody, req.body ?? {});
    const what = { models: body.models ?? true, cache: body.cache ?? true };
    await parts.free(what);
    res.json({ freed: what });
  });
  api.use(nodesRoutes(parts.registry));
  api.use(settingsRoutes(parts.settings));
  api.use(workflowsRoutes(parts.library, parts.registry));
  api.use(jobsRoutes(parts.queue, parts.history, callerOf));
  api.use(batchRoutes(parts.queue, parts.registry, parts.folders, callerOf));
  api.use(filesRoutes(parts.folders, { maxUploadBytes: parts.maxUploadBytes }));
  if (parts.modelsDir) api.use(checkpointChoicesRoutes(parts.modelsDir));
  if (parts.models) api.use(modelsRoutes(parts.models));
  if (parts.segment) api.use(segmentRoutes(parts.folders, parts.segment), helperModelsRoutes(parts.segment.modelsDir));
  api.use((req) => {
    throw new HttpError(404, "not_found", `no API route ${req.method} ${req.originalUrl.slice(0, 200)}`);
  });
  app.use("/api", api);

  if (parts.clientDir && existsSync(parts.clientDir)) {
    app.use(express.static(parts.clientDir, { index: "index.html" }));
  } else {
    app.get("/", (_req, res) => {
      res
        .type("text/plain")
        .send("Maskflow API is running. The editor is not built yet: run `npm run build:client` and reload.\n");
    });
  }
  // Outside /api too, an unknown path is a JSON error like every other.
  app.use((req) => {
    throw new HttpError(404, "not_found", `no route ${req.method} ${req.path.slice(0, 200)}`);
  });
  app.use(sendError(parts.log, parts.privateFolders));
  return app;
}
