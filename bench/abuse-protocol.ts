/**
 * What the abuse benchmark and the server process it attacks (abuse-server.ts) say to each other over the
 * IPC channel: the bench asks, the server answers with figures only it can see (its own event loop, its
 * own memory after a full GC, its output cache, its files, its sockets). Both ends parse with these
 * schemas, so a change on one side that the other does not follow fails loudly instead of reading NaN.
 */
import { z } from "zod";

/** The answer's shape for each command. */
export const answerSchemas = {
  /** Full GC, RSS noted, monitorEventLoopDelay (5 ms resolution) enabled. */
  start: z.strictObject({ rssBeforeMb: z.number() }),
  /** Delay monitor disabled; RSS after a full GC; the output cache's bytes (bounded, emptied by POST /api/free). */
  stop: z.strictObject({
    loopP99Ms: z.number(),
    loopMaxMs: z.number(),
    rssBeforeMb: z.number(),
    rssAfterMb: z.number(),
    outputCacheBytes: z.number(),
  }),
  /** RSS after a full GC and the output cache's bytes, outside any measurement. */
  rss: z.strictObject({ rssMb: z.number(), outputCacheBytes: z.number() }),
  /** Files left in input/segmind and their total size. */
  "segmind-inputs": z.strictObject({ files: z.number().int(), bytes: z.number() }),
  /** From now on the server's end of the next WebSocket upgrade for `clientId` is watched. */
  "watch-socket": z.strictObject({}),
  /** Ends the watch: the most bytes the server held unsent on that socket, and whether the server closed it. */
  "socket-report": z.strictObject({ connected: z.boolean(), heldMostBytes: z.number(), closedByServer: z.boolean() }),
} as const;

export type CommandName = keyof typeof answerSchemas;
export type Answer<C extends CommandName> = z.infer<(typeof answerSchemas)[C]>;

export const commandSchema = z.discriminatedUnion("command", [
  z.strictObject({ id: z.number().int(), command: z.literal("start") }),
  z.strictObject({ id: z.number().int(), command: z.literal("stop") }),
  z.strictObject({ id: z.number().int(), command: z.literal("rss") }),
  z.strictObject({ id: z.number().int(), command: z.literal("segmind-inputs") }),
  z.strictObject({ id: z.number().int(), command: z.literal("watch-socket"), clientId: z.string().min(1) }),
  z.strictObject({ id: z.number().int(), command: z.literal("socket-report") }),
]);
export type Command = z.infer<typeof commandSchema>;

/** Everything the server process sends: once `ready` with its URL, then one reply per command, by id. */
export const serverMessageSchema = z.union([
  z.strictObject({ ready: z.url() }),
  z.strictObject({ id: z.number().int(), ok: z.literal(true), result: z.unknown() }),
  z.strictObject({ id: z.number().int(), ok: z.literal(false), error: z.string() }),
]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;
