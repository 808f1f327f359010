/**
 * ioredis connections for the Redis queue, set up the way BullMQ needs them to survive a Redis restart:
 * `maxRetriesPerRequest: null` (a command waits for the reconnect instead of failing after 20 tries;
 * BullMQ refuses blocking connections without it) and a retry strategy that keeps reconnecting forever,
 * backing off to one attempt every two seconds.
 */
import { Redis } from "ioredis";

export const RECONNECT_MAX_DELAY_MS = 2000;

export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * attempt, RECONNECT_MAX_DELAY_MS);
}

/** A Redis URL as the user gave it, checked early so a typo is reported before anything connects. */
export function parseRedisUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a Redis URL; expected redis://HOST:PORT[/DB] or rediss://…`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new Error(`"${url}" is not a Redis URL (it starts with ${parsed.protocol}); expected redis://HOST:PORT[/DB] or rediss://…`);
  }
  return parsed;
}

/** One connection; `name` shows in CLIENT LIST, which helps when many workers share a Redis. */
export function connectRedis(url: string, name: string): Redis {
  parseRedisUrl(url);
  const connection = new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: reconnectDelayMs,
    connectionName: name,
  });
  // Without a listener ioredis prints every failed reconnect as an unhandled error event.
  connection.on("error", () => {});
  return connection;
}

/**
 * A logger for connection errors that says each problem once per outage: while Redis is down every
 * reconnect attempt fails the same way, and a line every 100 ms–2 s hides everything else.
 */
export function oncePerOutage(connection: Redis, log: (message: string) => void): (error: Error) => void {
  let said = new Set<string>();
  connection.on("ready", () => {
    if (said.size) log("reconnected to Redis");
    said = new Set();
  });
  return (error) => {
    if (said.has(error.message)) return;
    said.add(error.message);
    log(error.message);
  };
}
