/**
 * One Maskflow server: data folders, history, executor, queue, HTTP API and WebSocket, started
 * together and stopped together. `maskflow serve` and the tests both start it through here.
 */
import { once } from "node:events";
import { createRequire } from "node:module";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { NodeEngines } from "../nodes/node-definition.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { Executor } from "./executor/executor.ts";
import { ApiKeys, parseApiKeys } from "./http/api-keys.ts";
import { normalizeAllowedHost, OriginPolicy, parseAllowedHosts } from "./http/origin-guard.ts";
import { consoleLog, type ServerLog } from "./logging/server-log.ts";
import { createApp } from "./http/app.ts";
import type { ModelPullService } from "./models/model-pull-service.ts";
import { resolveModelsDir } from "./models/models-folder.ts";
import { segmindRoutes } from "./http/routes/segmind-routes.ts";
import { WebSocketHub } from "./http/websocket-hub.ts";
import { BullMqJobQueue } from "./queue/bullmq-job-queue.ts";
import { JobQueue } from "./queue/job-queue.ts";
import type { JobQueuePort } from "./queue/job-queue-port.ts";
import { DataFolders } from "./storage/data-folders.ts";
import { HistoryStore } from "./storage/history-store.ts";
import { SettingsStore } from "./storage/settings-store.ts";
import { WorkflowLibrary } from "./storage/workflow-library.ts";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface ServerOptions {
  readonly host?: string;
  readonly port?: number;
  readonly dataDir?: string;
  readonly maxPending?: number;
  /** Pending jobs one clientId may have at once (unlimited when absent). */
  readonly maxPendingPerClient?: number;
  /** Queue on this Redis (BullMQ) for `maskflow worker`s to run, instead of running jobs in this process. */
  readonly redisUrl?: string;
  readonly maxUploadBytes?: number;
  readonly cacheBytes?: number;
  readonly registry?: NodeRegistry;
  /** The user's settings (the Segmind key); by default DATA/settings.json. */
  readonly settings?: SettingsStore;
  readonly engines?: NodeEngines;
  readonly shippedWorkflowsDir?: string;
  readonly clientDir?: string;
  /** Keys every API route, the WebSocket and the Segmind-compatible endpoint require (MASKFLOW_API_KEYS). */
  readonly apiKeys?: readonly string[];
  /**
   * Host names beyond the loopback ones the server answers to (--allow-host, MASKFLOW_ALLOWED_HOSTS): the names
   * clients reach it by through a reverse proxy or on a network. Any other Host header is a 403 (DNS rebinding).
   */
  readonly allowedHosts?: readonly string[];
  /** Let image URLs of the Segmind-compatible endpoint reach private addresses (MASKFLOW_ALLOW_PRIVATE_URLS=1). */
  readonly allowPrivateUrls?: boolean;
  /** Exact addresses image URLs may use even when private ones are refused (for tests on loopback). */
  readonly allowedUrlAddresses?: readonly string[];
  /** Unloads the engines' models (POST /api/free); they load again on next use. */
  readonly releaseModels?: () => Promise<void>;
  /** Where the server's own lines go (default: the console, prefixed "maskflow:"). */
  readonly log?: ServerLog;
  /** Engine availability shown at start-up and in GET /api/system. */
  readonly engineStatus?: () => Record<string, unknown>;
  /** Pulling the model from the editor (/api/models…, `model_pull` events); its owner closes it. */
  readonly modelPulls?: ModelPullService;
}

export interface RunningServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly queue: JobQueuePort;
  readonly executor: Executor;
  readonly folders: DataFolders;
  readonly history: HistoryStore;
  readonly httpServer: Server;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const log = options.log ?? consoleLog;
  const shippedWorkflows = options.shippedWorkflowsDir ?? path.join(PROJECT_ROOT, "workflows");
  const folders = await new DataFolders(options.dataDir ?? path.join(process.cwd(), "data"), {
    extraInputRoots: [shippedWorkflows],
  }).create();
  // A Redis queue's jobs outlive this process, so only the embedded queue's unfinished jobs are cut off at start.
  const history = await new HistoryStore(folders.historyFile, { log }).load({ keepUnfinished: Boolean(options.redisUrl) });
  const registry = options.registry ?? createBuiltinRegistry();
  const executor = new Executor({
    registry,
    storage: folders,
    engines: options.engines,
    cacheBytes: options.cacheBytes,
    logger: log,
  });
  const limits = { maxPending: options.maxPending, maxPendingPerClient: options.maxPendingPerClient };
  const queue: JobQueuePort = options.redisUrl
    ? await BullMqJobQueue.open({ redisUrl: options.redisUrl, executor, history, log, ...limits })
    : new JobQueue({ executor, history, log, ...limits });
  const library = new WorkflowLibrary(shippedWorkflows, folders.workflows);
  const settings = options.settings ?? (await new SettingsStore(folders.settingsFile).load());
  const keys = new ApiKeys(options.apiKeys ?? parseApiKeys(process.env.MASKFLOW_API_KEYS));
  const allowedHosts = (options.allowedHosts ?? parseAllowedHosts(process.env.MASKFLOW_ALLOWED_HOSTS)).map((name) => {
    const normalized = normalizeAllowedHost(name);
    if (!normalized) throw new Error(`allowed host "${name}" is not a host name: give a name or address without scheme, port or path`);
    return normalized;
  });
  const origins = new OriginPolicy(allowedHosts, host);
  const { version } = createRequire(import.meta.url)("../package.json") as { version: string };
  const app = createApp({
    log,
    registry,
    queue,
    history,
    folders,
    library,
    settings,
    keys,
    origins,
    privateFolders: [folders.root, folders.output, folders.temp, PROJECT_ROOT],
    models: options.modelPulls,
    // Where a CheckpointLoader resolves its name: the local engine's models folder, else the default one (as the node does).
    modelsDir: () => options.engines?.local?.modelsDir ?? resolveModelsDir(undefined),
    segment: options.engines?.segment,
    maxUploadBytes: options.maxUploadBytes ?? 50 * 1024 * 1024,
    clientDir: options.clientDir ?? path.join(PROJECT_ROOT, "client", "dist"),
    extraRoutes: [
      segmindRoutes({
        queue,
        folders,
        keys,
        allowPrivateUrls: options.allowPrivateUrls ?? process.env.MASKFLOW_ALLOW_PRIVATE_URLS === "1",
        allowedUrlAddresses: options.allowedUrlAddresses,
        log,
      }),
    ],
    free: async ({ models, cache }) => {
      if (cache) executor.cache.clear();
      if (models) await options.releaseModels?.();
    },
    // canPullModels: whether /api/models… is there, so the editor asks for it only then (no 404 on an embedded server).
    system: () => ({ name: "maskflow", version, engines: options.engineStatus?.() ?? {}, queue: queue.status(), canPullModels: Boolean(options.modelPulls) }),
  });
  const httpServer = createServer(app);
  const hub = new WebSocketHub(httpServer, queue, { keys, origins }, log);
  const stopPullEvents = options.modelPulls?.subscribe((status) => hub.broadcast("model_pull", status));
  httpServer.listen(options.port ?? 8188, host);
  try {
    await once(httpServer, "listening");
  } catch (error) {
    // A port in use: the Redis queue's connections would otherwise keep the process alive.
    stopPullEvents?.();
    await queue.close();
    await hub.close();
    throw error;
  }
  // Previews are for the session that made them; a fresh start sweeps them (ComfyUI does the same), once the port is
  // ours: a second server that fails on a busy port must not empty the running one's folder. With a Redis queue,
  // workers write into the same folder and may be mid-job, so it is left alone there.
  if (!options.redisUrl) await folders.clearTemp();
  const port = (httpServer.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;

  return {
    url: `http://${shownHost}:${port}`,
    host,
    port,
    queue,
    executor,
    folders,
    history,
    httpServer,
    async close() {
      stopPullEvents?.();
      await queue.close();
      await hub.close();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
