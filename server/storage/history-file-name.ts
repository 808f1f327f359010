/**
 * The name of one history record's file: `<creation stamp, 15 digits>-<job id, URI-encoded>.<status>.json`.
 * The stamp leads and has a fixed width, so a plain sorted readdir lists records in creation order; the name
 * alone says which job a file holds and whether it finished, so the store builds its index at start without
 * opening a single record.
 */
export const RECORD_STATUSES = ["queued", "success", "error", "interrupted"] as const;
export type RecordStatus = (typeof RECORD_STATUSES)[number];

const STAMP_DIGITS = 15;
const NAME = new RegExp(`^(\\d{${STAMP_DIGITS}})-(.+)\\.(${RECORD_STATUSES.join("|")})\\.json$`);
/** Leaves room for the stamp and status within the 255 bytes most file systems allow in a name. */
const MAX_ENCODED_ID = 200;

export interface RecordFileName {
  readonly name: string;
  /** Milliseconds since 1970, unique within one history folder. */
  readonly stamp: number;
  readonly id: string;
  readonly status: RecordStatus;
}

export function recordFileName(stamp: number, id: string, status: RecordStatus): string {
  const encoded = encodeURIComponent(id);
  if (encoded.length > MAX_ENCODED_ID) throw new Error(`a job id of ${encoded.length} characters (URI-encoded) is too long to name its history file (at most ${MAX_ENCODED_ID})`);
  return `${String(stamp).padStart(STAMP_DIGITS, "0")}-${encoded}.${status}.json`;
}

/** The parts of a record's file name, or undefined for any other name (a stray file, a temp file). */
export function parseRecordFileName(name: string): RecordFileName | undefined {
  const match = NAME.exec(name);
  if (!match) return undefined;
  let id: string;
  try {
    id = decodeURIComponent(match[2]);
  } catch {
    return undefined;
  }
  return { name, stamp: Number(match[1]), id, status: match[3] as RecordStatus };
}
