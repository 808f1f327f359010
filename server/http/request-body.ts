import type { z } from "zod";
import { HttpError } from "./http-error.ts";

/** Parses a request body with a zod schema; a mismatch is a 400 that names each field and what it allows. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown, what = "request body"): z.infer<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    field: issue.path.map(String).join(".") || "(body)",
    message: issue.message,
  }));
  throw new HttpError(
    400,
    "invalid_request",
    `${what} is invalid: ${issues.map((i) => `${i.field}: ${i.message}`).join("; ")}`,
    { issues },
  );
}
