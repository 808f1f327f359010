/**
 * The helper models' API for the mask painter: POST /api/segment (a picture in the input folder and clicks → the
 * proposed mask PNG) and GET /api/helper-models (which helper models the server has).
 */
import { ApiError, fetchWithKey } from "./maskflow-api.ts";

export interface SegmentQuery {
  readonly image: string;
  readonly points: readonly { readonly x: number; readonly y: number; readonly positive: boolean }[];
  readonly box?: { readonly left: number; readonly top: number; readonly right: number; readonly bottom: number };
}

export interface HelperModelStatus {
  readonly name: string;
  readonly title: string;
  readonly kind: string;
  readonly installed: boolean;
  readonly pullCommand: string;
}

async function failure(response: Response, what: string): Promise<ApiError> {
  const body = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
  return new ApiError(response.status, body.error?.code ?? "http_error", body.error?.message ?? `${what}: HTTP ${response.status}`, body.error?.details);
}

export async function segmentPicture(query: SegmentQuery, signal?: AbortSignal): Promise<{ mask: Blob; score: number; embedding: string }> {
  const response = await fetchWithKey("/api/segment", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(query), signal });
  if (!response.ok) throw await failure(response, "select");
  return {
    mask: await response.blob(),
    score: Number(response.headers.get("x-maskflow-score") ?? "0"),
    embedding: response.headers.get("x-maskflow-embedding") ?? "computed",
  };
}

export async function helperModels(): Promise<HelperModelStatus[]> {
  const response = await fetchWithKey("/api/helper-models", { method: "GET" });
  if (!response.ok) throw await failure(response, "helper models");
  return ((await response.json()) as { models: HelperModelStatus[] }).models;
}
