import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { HttpError } from "./http-error.ts";
import { SessionStore } from "./session-store.ts";

/** The HttpOnly cookie the server sets after POST /api/session: an opaque token, never the key. */
export const SESSION_COOKIE = "maskflow_session";

/**
 * The cookie editors before POST /api/session wrote from script, with the key itself in it. Never accepted as a
 * key (a script could read it); signing in or out tells the browser to delete it.
 */
export const LEGACY_KEY_COOKIE = "maskflow_api_key";

/** Keys from MASKFLOW_API_KEYS: comma or whitespace separated; none means no key is asked for. */
export function parseApiKeys(value: string | undefined): string[] {
  return (value ?? "").split(/[\s,]+/).filter(Boolean);
}

/** Who a request is, as far as keys go: which key (a digest prefix, never the key), and how it was shown. */
export interface KeyHolder {
  readonly keyId: string;
  readonly via: "header" | "session";
}

export type KeyCheck = { readonly ok: true; readonly holder?: KeyHolder } | { readonly ok: false; readonly problem: HttpError };

/**
 * The server's keys and the editor sessions opened with them. A request shows a key in the `x-api-key` header
 * (programs), else the session cookie (the editor, <img src>, the WebSocket). Keys are compared in constant time.
 */
export class ApiKeys {
  readonly #digests: readonly Buffer[];
  readonly sessions = new SessionStore();

  constructor(keys: readonly string[]) {
    this.#digests = keys.map(digest);
  }

  get required(): boolean {
    return this.#digests.length > 0;
  }

  /** The id of the key `given` is, or undefined when it is none of them. */
  keyIdOf(given: string): string | undefined {
    const candidate = digest(given);
    let found: string | undefined;
    // Every key is compared, so the time taken does not say which one matched.
    for (const key of this.#digests) if (timingSafeEqual(key, candidate)) found = key.toString("hex").slice(0, 12);
    return found;
  }

  check(request: IncomingMessage): KeyCheck {
    if (!this.required) return { ok: true };
    const header = request.headers["x-api-key"];
    const shown = Array.isArray(header) ? header[0] : header;
    if (shown !== undefined) {
      const keyId = this.keyIdOf(shown);
      if (keyId) return { ok: true, holder: { keyId, via: "header" } };
      return { ok: false, problem: new HttpError(401, "invalid_api_key", "the x-api-key header does not hold a valid key for this server") };
    }
    const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
    const sessionKey = token ? this.sessions.keyIdOf(token) : undefined;
    if (sessionKey) return { ok: true, holder: { keyId: sessionKey, via: "session" } };
    if (token) {
      return {
        ok: false,
        problem: new HttpError(401, "invalid_api_key", "the session has ended or its key is no longer valid: sign in again with POST /api/session"),
      };
    }
    return {
      ok: false,
      problem: new HttpError(401, "missing_api_key", "this server needs an API key: send it in the x-api-key header (the editor signs in with POST /api/session)"),
    };
  }
}

/** The session cookie: unreadable by scripts, never sent with a request another site starts, Secure under https. */
export function sessionCookie(token: string, secure: boolean, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? "; Secure" : ""}`;
}

export function expiredCookie(name: string, httpOnly: boolean): string {
  return `${name}=; Path=/;${httpOnly ? " HttpOnly;" : ""} SameSite=Strict; Max-Age=0`;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) {
      try {
        return decodeURIComponent(rest.join("="));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
