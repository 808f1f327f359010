/**
 * The server's HTTP API as typed functions. Errors come back as ApiError with the server's code,
 * message and details (a 400 invalid_workflow carries its problems keyed by node id and input).
 */
import type { ImageRef } from "../../../nodes/node-definition.ts";
import type { NodeSchema } from "../../../nodes/registry.ts";
import type { WorkflowDocument } from "../../../server/workflow/workflow-document.ts";
import type { WorkflowProblem } from "../../../server/workflow/workflow-problem.ts";

export type { ImageRef, NodeSchema, WorkflowDocument, WorkflowProblem };

/** A job's place in a batch queued at once (POST /api/prompt/batch). */
export interface BatchRef {
  readonly id: string;
  readonly index: number;
  readonly count: number;
  /** The picture's file name without extension. */
  readonly name: string;
}

export interface JobSummary {
  readonly id: string;
  readonly clientId: string | null;
  readonly createdAt: string;
  readonly workflow: WorkflowDocument;
  readonly batch?: BatchRef;
}

/** POST /api/prompt/batch's answer. */
export interface QueuedBatch {
  readonly batch: { readonly id: string; readonly count: number };
  readonly jobs: ReadonlyArray<{ readonly id: string; readonly position: number; readonly name: string; readonly inputs: Readonly<Record<string, string>> }>;
}

export interface HistoryEntry {
  readonly id: string;
  readonly status: string;
  readonly workflow: unknown;
  readonly createdAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly outputs: Readonly<Record<string, { images: readonly ImageRef[]; values: Record<string, unknown> }>>;
  readonly error?: { node?: string; message: string };
  /** Why the workflow was left out of the record (too big to keep); `workflow` is then null. */
  readonly omitted?: string;
  readonly batch?: BatchRef;
}

/** GET /api/system: what the server runs on. Engines are reported by `maskflow serve`; an embedded server may report none. */
export interface SystemInfo {
  readonly name: string;
  readonly version: string;
  readonly engines: {
    readonly local?: { readonly summary?: string; readonly installed?: boolean; readonly defaultModelDir?: string };
    readonly segmind?: { readonly summary?: string; readonly keySet?: boolean };
  };
  /** Whether the server offers /api/models and the pull (an embedded server may not). */
  readonly canPullModels?: boolean;
}

/** A model pull as the server reports it (GET /api/models, POST /api/models/pull and the `model_pull` event). */
export interface ModelPullStatus {
  readonly id: string;
  readonly state: "planning" | "downloading" | "building" | "done" | "failed" | "cancelled";
  readonly repo: string;
  readonly revision: string;
  readonly name: string;
  readonly modelDir: string;
  /** The download is a checkpoint that is built into modelDir after it (the default model). */
  readonly builds: boolean;
  readonly downloadDir: string | null;
  /** The build's progress while state is "building": "reading checkpoint 40 %", "building unet 12 %". */
  readonly build: { readonly phase: "reading" | "building"; readonly part: string | null; readonly done: number; readonly total: number; readonly label: string } | null;
  readonly file: string | null;
  readonly filesDone: number;
  readonly fileCount: number;
  readonly bytes: number;
  readonly totalBytes: number;
  readonly alreadyPresentBytes: number;
  readonly bytesPerSecond: number;
  readonly secondsLeft: number | null;
  readonly error?: string;
  readonly errorCode?: string;
}

/** GET /api/models/pull/preview: what Download model would fetch, asked of the hub before anything starts. */
export interface ModelPullPreview {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string | null;
  readonly name: string;
  readonly modelDir: string;
  readonly files: readonly string[];
  readonly fileCount: number;
  readonly totalBytes: number;
  readonly neededBytes: number;
  /** The files are a checkpoint, built into Maskflow's ONNX graphs in modelDir after the download. */
  readonly builds: boolean;
  readonly downloadDir: string | null;
  /** Bytes the build is expected to write (0 when nothing is built, or built already). */
  readonly buildBytes: number;
  readonly freeBytes: number;
}

export interface InstalledModel {
  readonly name: string;
  readonly modelDir: string;
  readonly kind: string;
  readonly status: "complete" | "incomplete";
  readonly bytes: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { problems?: WorkflowProblem[]; [key: string]: unknown } = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/**
 * A server started with MASKFLOW_API_KEYS answers 401: ask the user for the key and sign in with it
 * (POST /api/session). The server answers with an HttpOnly session cookie, which fetch, <img src> and the
 * WebSocket send on their own; the key itself is never kept by the page, so no script can read it.
 * A session ends when the server restarts: the next 401 asks again. Gives up after the user cancels.
 */
export async function fetchWithKey(route: string, init: RequestInit): Promise<Response> {
  let response = await fetch(route, init);
  for (let attempt = 0; response.status === 401 && attempt < 3; attempt++) {
    const key = window.prompt(attempt === 0 ? "This Maskflow server needs an API key:" : "That key was refused. API key:");
    if (!key) return response;
    const signIn = await fetch("/api/session", { method: "POST", headers: { "x-api-key": key.trim() } });
    if (signIn.ok) response = await fetch(route, init);
  }
  return response;
}

async function request<T>(method: string, route: string, body?: unknown): Promise<T> {
  const response = await fetchWithKey(route, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string; details?: ApiError["details"] } } | undefined)?.error;
    throw new ApiError(response.status, error?.code ?? "http_error", error?.message ?? `${method} ${route}: HTTP ${response.status}`, error?.details);
  }
  return json as T;
}

export const api = {
  nodes: () => request<NodeSchema[]>("GET", "/api/nodes"),
  listWorkflows: () => request<Array<{ name: string; source: "shipped" | "user" }>>("GET", "/api/workflows"),
  readWorkflow: (name: string) => request<unknown>("GET", `/api/workflows/${encodeURIComponent(name)}`),
  saveWorkflow: (name: string, document: WorkflowDocument) =>
    request<{ name: string; saved: boolean; problems: WorkflowProblem[] }>("PUT", `/api/workflows/${encodeURIComponent(name)}`, document),
  deleteWorkflow: (name: string) => request<unknown>("DELETE", `/api/workflows/${encodeURIComponent(name)}`),
  queuePrompt: (workflow: WorkflowDocument, clientId: string) => request<{ id: string; position: number }>("POST", "/api/prompt", { workflow, clientId }),
  /** `inputs`: NODE.INPUT → a subfolder of the input folder; one job per picture, paired by file name. */
  queueBatch: (workflow: WorkflowDocument, inputs: Record<string, string>, clientId: string) =>
    request<QueuedBatch>("POST", "/api/prompt/batch", { workflow, inputs, clientId }),
  queue: () => request<{ running: JobSummary[]; pending: JobSummary[] }>("GET", "/api/queue"),
  clearQueue: () => request<unknown>("POST", "/api/queue", { clear: true }),
  cancel: (ids: string[]) => request<unknown>("POST", "/api/queue", { delete: ids }),
  interrupt: (id?: string) => request<unknown>("POST", "/api/interrupt", id ? { id } : {}),
  settings: () => request<{ segmindApiKey: "settings" | "environment" | "none" }>("GET", "/api/settings"),
  saveSettings: (changes: { segmindApiKey: string | null }) =>
    request<{ segmindApiKey: "settings" | "environment" | "none" }>("PUT", "/api/settings", changes),
  inputFiles: () => request<string[]>("GET", "/api/files?type=input"),
  system: () => request<SystemInfo>("GET", "/api/system"),
  models: () => request<{ modelsDir: string; defaultModelDir: string | null; models: InstalledModel[]; pull: ModelPullStatus | null }>("GET", "/api/models"),
  /** What a Load Checkpoint may name: checkpoint files, then model folders (names only). */
  checkpoints: () => request<{ checkpoints: string[] }>("GET", "/api/models/checkpoints"),
  /** What a Load LoRA may name: the LoRA files of the models folder's loras/ (names only). */
  loras: () => request<{ loras: string[] }>("GET", "/api/models/loras"),
  previewModelPull: () => request<ModelPullPreview>("GET", "/api/models/pull/preview"),
  startModelPull: () => request<{ pull: ModelPullStatus }>("POST", "/api/models/pull", {}),
  cancelModelPull: () => request<{ pull: ModelPullStatus }>("DELETE", "/api/models/pull"),
  history: (max = 30) => request<HistoryEntry[]>("GET", `/api/history?max_items=${max}`),

  async upload(file: Blob, name: string, options: { overwrite?: boolean; subfolder?: string } = {}): Promise<ImageRef & { name: string }> {
    const form = new FormData();
    form.append("image", file, name);
    if (options.overwrite) form.append("overwrite", "true");
    if (options.subfolder) form.append("subfolder", options.subfolder);
    const response = await fetchWithKey("/api/upload", { method: "POST", body: form });
    // A proxy in front of the server may answer a too-large upload with an HTML page: report the status, not a JSON parse error.
    const json = (await response.json().catch(() => ({}))) as { name: string; subfolder: string; type: "input" | "temp"; error?: { code: string; message: string } };
    if (!response.ok) throw new ApiError(response.status, json.error?.code ?? "upload_failed", json.error?.message ?? `upload failed: HTTP ${response.status}`);
    return { ...json, filename: json.name };
  },
};

export function viewUrl(ref: { filename: string; subfolder?: string; type?: string }): string {
  const query = new URLSearchParams({ filename: ref.filename, type: ref.type ?? "output", subfolder: ref.subfolder ?? "" });
  return `/api/view?${query}`;
}
