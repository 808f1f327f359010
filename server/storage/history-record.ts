/**
 * What one history record holds, how it is checked when read back, and how it is kept under a size limit.
 * A record is serialised on its own (never the whole history in one string), and one that would pass the limit
 * gives up its workflow first, then its outputs' values, then its outputs: the status, timings and error stay.
 */
import { z } from "zod";
import type { NodeOutputRecord } from "../executor/execution-event.ts";
import type { JobStatus } from "../executor/executor.ts";

/** A job's place in a batch queued at once (POST /api/prompt/batch): the queue panel shows a batch as one group. */
export interface BatchRef {
  readonly id: string;
  /** From 0, in the batch's order. */
  readonly index: number;
  readonly count: number;
  /** What this job is of the batch: its picture's file name without extension. */
  readonly name: string;
}

export interface HistoryEntry {
  readonly id: string;
  readonly status: JobStatus;
  readonly clientId?: string;
  /** The workflow that ran; null when it was too big to keep (see `omitted`) or its record could not be read. */
  readonly workflow: unknown;
  readonly createdAt: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** Wall time of the run in milliseconds. */
  readonly durationMs: number;
  readonly outputs: Readonly<Record<string, NodeOutputRecord>>;
  readonly error?: { readonly node?: string; readonly nodeType?: string; readonly message: string };
  readonly executed: readonly string[];
  readonly cached: readonly string[];
  /** Present when the record was cut down to its size limit: what was left out and why. */
  readonly omitted?: string;
  /** The batch the job was queued in (POST /api/prompt/batch). */
  readonly batch?: BatchRef;
}

/** A job accepted and not finished yet: what a crash leaves behind, and what the next start marks as cut off. */
export interface QueuedRecord {
  readonly id: string;
  readonly status: "queued";
  readonly clientId?: string;
  readonly workflow: unknown;
  readonly createdAt: string;
  readonly omitted?: string;
  readonly batch?: BatchRef;
}

export type HistoryRecord = HistoryEntry | QueuedRecord;

export const DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024;

const imageRefSchema = z.object({ filename: z.string(), subfolder: z.string(), type: z.enum(["output", "input", "temp"]) });
const outputSchema = z.object({
  images: z.array(imageRefSchema),
  values: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
});

const batchRefSchema = z.object({ id: z.string(), index: z.number().int().min(0), count: z.number().int().min(1), name: z.string() });

export const historyEntrySchema = z.object({
  id: z.string(),
  status: z.enum(["success", "error", "interrupted"]),
  clientId: z.string().optional(),
  workflow: z.unknown(),
  createdAt: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  outputs: z.record(z.string(), outputSchema),
  error: z.object({ node: z.string().optional(), nodeType: z.string().optional(), message: z.string() }).optional(),
  executed: z.array(z.string()),
  cached: z.array(z.string()),
  omitted: z.string().optional(),
  batch: batchRefSchema.optional(),
});

export const queuedRecordSchema = z.object({
  id: z.string(),
  status: z.literal("queued"),
  clientId: z.string().optional(),
  workflow: z.unknown(),
  createdAt: z.string(),
  omitted: z.string().optional(),
  batch: batchRefSchema.optional(),
});

/** Parses a record file's text; throws with a short reason when it is not JSON or not a record. */
export function parseRecord(text: string): HistoryRecord {
  const json: unknown = JSON.parse(text);
  const queued = queuedRecordSchema.safeParse(json);
  if (queued.success) return queued.data;
  const finished = historyEntrySchema.safeParse(json);
  if (finished.success) return finished.data;
  const first = finished.error.issues[0];
  throw new Error(`not a history record: ${first ? `${first.path.join(".") || "(record)"}: ${first.message}` : "unexpected shape"}`);
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** JSON of one record, or undefined where it cannot be a string at all (past V8's maximum string length). */
function serialize(record: HistoryRecord): { text: string; bytes: number } | undefined {
  try {
    const text = JSON.stringify(record);
    return { text, bytes: Buffer.byteLength(text) };
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}

/**
 * The record's JSON, at most `maxBytes` long, and the record that JSON holds (cut down where it had to be).
 * Each step drops one more part and says so in `omitted`.
 */
export function serializeBounded(record: HistoryRecord, maxBytes: number): { text: string; record: HistoryRecord } {
  const whole = serialize(record);
  if (whole && whole.bytes <= maxBytes) return { text: whole.text, record };
  const size = whole ? megabytes(whole.bytes) : "past the longest string JavaScript can hold";
  const limit = `a history record keeps at most ${megabytes(maxBytes)}`;
  const withoutWorkflow: HistoryRecord = { ...record, workflow: null, omitted: `the workflow: the record was ${size} as JSON and ${limit}` };
  const second = serialize(withoutWorkflow);
  if (second && second.bytes <= maxBytes) return { text: second.text, record: withoutWorkflow };
  if (record.status === "queued") throw new Error(`the queued record of job ${record.id} is over ${megabytes(maxBytes)} even without its workflow`);
  const imagesOnly: HistoryEntry = {
    ...(withoutWorkflow as HistoryEntry),
    outputs: Object.fromEntries(Object.entries(record.outputs).map(([node, output]) => [node, { images: output.images, values: {} }])),
    error: record.error && { ...record.error, message: record.error.message.slice(0, 10_000) },
    omitted: `the workflow and the outputs' values: the record was ${size} as JSON and ${limit}`,
  };
  const third = serialize(imagesOnly);
  if (third && third.bytes <= maxBytes) return { text: third.text, record: imagesOnly };
  const bare: HistoryEntry = {
    ...imagesOnly,
    outputs: {},
    executed: [],
    cached: [],
    omitted: `the workflow, the outputs and the list of executed nodes: the record was ${size} as JSON and ${limit}`,
  };
  const last = serialize(bare);
  if (!last || last.bytes > maxBytes) throw new Error(`the record of job ${record.id} is over ${megabytes(maxBytes)} even without its workflow and outputs`);
  return { text: last.text, record: bare };
}
