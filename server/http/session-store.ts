import { randomBytes } from "node:crypto";

/** How long an editor session lasts; it also ends when the server restarts (sessions live in memory). */
export const SESSION_LIFETIME_SECONDS = 30 * 24 * 60 * 60;
/** A key holder opening sessions in a loop must not grow the server's memory without end: the oldest go first. */
const MAX_SESSIONS = 10_000;

/**
 * Editor sessions: opaque random tokens, each mapped to the id of the key it was opened with. The cookie
 * holds only the token, so a leaked cookie is revocable (DELETE /api/session) and never reveals the key.
 */
export class SessionStore {
  // Insertion order is age order, which is what eviction needs.
  readonly #sessions = new Map<string, { keyId: string; expires: number }>();

  open(keyId: string): string {
    const token = randomBytes(32).toString("base64url");
    while (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    this.#sessions.set(token, { keyId, expires: Date.now() + SESSION_LIFETIME_SECONDS * 1000 });
    return token;
  }

  keyIdOf(token: string): string | undefined {
    const session = this.#sessions.get(token);
    if (!session) return undefined;
    if (session.expires <= Date.now()) {
      this.#sessions.delete(token);
      return undefined;
    }
    return session.keyId;
  }

  close(token: string): boolean {
    return this.#sessions.delete(token);
  }
}
