// The body of `POST /v1/sd1.5-inpainting`, Segmind's documented fields, defaults and ranges, as
// one zod schema. The Segmind client validates with it before any network call, and Maskflow's
// own Segmind-compatible endpoint validates incoming requests with it, so both agree on what a
// valid request is and say the same thing about an invalid one.
import { z } from "zod";
import { SEGMIND_SCHEDULER_NAMES } from "../onnx/schedulers/index.ts";
import { parseSeed } from "../onnx/torch-generator.ts";
import { MAX_PROMPT_CHARACTERS, promptLengthProblem } from "../../workflow/workflow-limits.ts";

/** Segmind's scheduler names are the local engine's first eleven: one list, so the two backends cannot drift apart. */
export const SEGMIND_SCHEDULERS = SEGMIND_SCHEDULER_NAMES;

export type SegmindScheduler = (typeof SEGMIND_SCHEDULERS)[number];

export const SEGMIND_IMAGE_SIZES = [512, 768] as const;

/** Segmind's documented ranges; the current docs allow 100 steps (older ones said 50). */
export const SEGMIND_LIMITS = {
  samples: { min: 1, max: 4, default: 1 },
  num_inference_steps: { min: 20, max: 100, default: 20 },
  guidance_scale: { min: 0.1, max: 25, default: 7.5 },
  strength: { min: 0.1, max: 1, default: 1 },
} as const;

const SEED_MAX = (1n << 64n) - 1n;

function shown(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "bigint") return value.toString();
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function integerInRange(field: keyof typeof SEGMIND_LIMITS) {
  const { min, max } = SEGMIND_LIMITS[field];
  return z
    .number({ error: (issue) => `${field} must be an integer from ${min} to ${max}; got ${shown(issue.input)}` })
    .int()
    .min(min)
    .max(max)
    .default(SEGMIND_LIMITS[field].default);
}

function numberInRange(field: keyof typeof SEGMIND_LIMITS) {
  const { min, max } = SEGMIND_LIMITS[field];
  return z
    .number({ error: (issue) => `${field} must be a number from ${min} to ${max}; got ${shown(issue.input)}` })
    .min(min)
    .max(max)
    .default(SEGMIND_LIMITS[field].default);
}

/** A URL (http or https) or a base64 image, optionally as a data URL; decoding is the server's job. */
const HTTP_URL = /^https?:\/\//i;
const DATA_URL = /^data:image\/[a-z0-9.+-]+;base64,/i;
const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/;

function imageField(field: "image" | "mask") {
  const what = field === "mask" ? "a mask image (white = repaint)" : "the input image";
  return z
    .string({
      error: (issue) =>
        issue.input === undefined
          ? `${field} is required: ${what} as an http(s) URL or base64 (older clients: ${field}Url)`
          : `${field} must be a string: an http(s) URL or base64 image; got ${shown(issue.input)}`,
    })
    .refine((value) => isUrlOrBase64(value), {
      error: (issue) => `${field} must be an http(s) URL or a base64-encoded image; got ${shown(issue.input)}`,
    });
}

function isUrlOrBase64(value: string): boolean {
  const text = value.trim();
  if (HTTP_URL.test(text)) return URL.canParse(text);
  const payload = text.replace(DATA_URL, "").replace(/\s+/g, "");
  return payload.length > 0 && BASE64_TEXT.test(payload);
}

/**
 * Seeds reach 2^64 − 1 (torch's range; Segmind's own example is 17123564234, wider than 32 bits),
 * past what a JSON number holds exactly, so a decimal string is accepted too. −1 asks for a
 * random seed, which is chosen here so the caller always knows (and can reuse) the seed used.
 */
const seedField = z
  .union([z.number(), z.string(), z.bigint()], {
    error: (issue) => `seed must be an integer from -1 to ${SEED_MAX} (-1 = random); got ${shown(issue.input)}`,
  })
  .transform((value, context): bigint => {
    try {
      if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new Error("beyond 2^53 a JSON number loses digits");
      }
      return parseSeed(value);
    } catch (error) {
      const reason = error instanceof Error ? error.message : "";
      const why = reason.includes("2^53") ? " (send seeds above 2^53 as a string)" : reason.includes("at most 20 digits") ? " (at most 20 digits)" : "";
      context.issues.push({
        code: "custom",
        input: value,
        message: `seed must be an integer from -1 to ${SEED_MAX} (-1 = random); got ${shown(value)}${why}`,
      });
      return z.NEVER;
    }
  })
  .prefault(-1);

/** The request fields under their current names (`image`, `mask`). */
export const segmindRequestFields = z.object({
  image: imageField("image"),
  mask: imageField("mask"),
  prompt: z
    .string({ error: (issue) => `prompt must be a string${issue.input === undefined ? " and is required" : `; got ${shown(issue.input)}`}` })
    .refine((value) => value.trim().length > 0, { error: "prompt must not be empty" })
    .refine((value) => value.length <= MAX_PROMPT_CHARACTERS, { error: (issue) => promptLengthProblem("prompt", issue.input as string) }),
  negative_prompt: z
    .string({ error: (issue) => `negative_prompt must be a string; got ${shown(issue.input)}` })
    .refine((value) => value.length <= MAX_PROMPT_CHARACTERS, { error: (issue) => promptLengthProblem("negative_prompt", issue.input as string) })
    .optional(),
  samples: integerInRange("samples"),
  scheduler: z
    .enum(SEGMIND_SCHEDULERS, {
      error: (issue) => `scheduler must be one of ${SEGMIND_SCHEDULERS.map((name) => `"${name}"`).join(", ")}; got ${shown(issue.input)}`,
    })
    .default("DDIM"),
  num_inference_steps: integerInRange("num_inference_steps"),
  guidance_scale: numberInRange("guidance_scale"),
  strength: numberInRange("strength"),
  seed: seedField,
  img_width: z
    .literal(SEGMIND_IMAGE_SIZES, { error: (issue) => `img_width must be 512 or 768; got ${shown(issue.input)}` })
    .default(512),
  img_height: z
    .literal(SEGMIND_IMAGE_SIZES, { error: (issue) => `img_height must be 512 or 768; got ${shown(issue.input)}` })
    .default(512),
  base64: z.boolean({ error: (issue) => `base64 must be true or false; got ${shown(issue.input)}` }).default(false),
});

/**
 * Older Segmind docs sent a URL as `imageUrl`/`maskUrl` and base64 as `image`/`mask`. Existing
 * client code may still do so: the older name is used when the current one is absent (the
 * current one wins when both are given).
 */
function renameLegacyFields(raw: unknown): unknown {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return raw;
  const body: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const [legacy, current] of [
    ["imageUrl", "image"],
    ["maskUrl", "mask"],
  ] as const) {
    if (body[current] === undefined && body[legacy] !== undefined) body[current] = body[legacy];
    delete body[legacy];
  }
  return body;
}

/** The whole request body: accepts the legacy names, fills Segmind's defaults, resolves seed −1. */
export const segmindRequestSchema = z.preprocess(renameLegacyFields, segmindRequestFields);

/** What a caller may send (current field names; seeds as number, decimal string or bigint). */
export type SegmindRequestInput = z.input<typeof segmindRequestFields>;
/** A validated request: every default filled in, the seed a concrete 0 … 2^64 − 1. */
export type SegmindRequest = z.output<typeof segmindRequestFields>;

export interface SegmindFieldProblem {
  /** The request field at fault (dotted path; "body" when the body itself is not an object). */
  readonly field: string;
  readonly message: string;
}

/** Turns a failed parse into one problem per field, each message naming the field and what it allows. */
export function describeSegmindRequestError(error: z.ZodError): SegmindFieldProblem[] {
  return error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.map(String).join(".") : "body";
    const message =
      issue.path.length === 0 && issue.code === "invalid_type"
        ? "the request body must be a JSON object with image, mask and prompt"
        : issue.message;
    return { field, message };
  });
}

export type SegmindRequestParse =
  | { readonly ok: true; readonly request: SegmindRequest }
  | { readonly ok: false; readonly problems: SegmindFieldProblem[] };

/** Validates an untrusted body (JSON from a client, or a caller's object). */
export function parseSegmindRequest(body: unknown): SegmindRequestParse {
  const result = segmindRequestSchema.safeParse(body);
  if (result.success) return { ok: true, request: result.data };
  return { ok: false, problems: describeSegmindRequestError(result.error) };
}

const SEED_LITERAL = /("seed"\s*:\s*)(-?\d{16,})(?=\s*[,}])/g;

/**
 * JSON.parse for a request body that keeps every digit of a large seed. Segmind's clients may
 * send a seed such as 18446744073709551615 as a bare JSON number, which JSON.parse would round
 * to the nearest double; such a seed is turned into a decimal string first, which the schema
 * accepts. (A `"seed":` in the text can only be the key: inside a JSON string a quote is escaped.)
 * Throws SyntaxError like JSON.parse.
 */
export function parseSegmindJsonBody(text: string): unknown {
  return JSON.parse(text.replace(SEED_LITERAL, (_match, key: string, digits: string) => `${key}"${digits}"`));
}

/**
 * The JSON text of a validated request as Segmind expects it. The seed is written as a bare
 * integer literal with all its digits, which JSON.stringify cannot do for values above 2^53.
 */
export function serializeSegmindRequest(request: SegmindRequest): string {
  const { seed, ...rest } = request;
  const withoutSeed = JSON.stringify(rest);
  return `${withoutSeed.slice(0, -1)},"seed":${seed.toString()}}`;
}
