/**
 * The bench's handle on the server process it attacks (abuse-server.ts): starts it with an IPC channel, asks
 * it the commands of abuse-protocol.ts and stops it. The child stops by itself when the channel closes, so it
 * cannot outlive the bench, however the bench ends; `stop` waits for it and kills it if it lingers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Answer, answerSchemas, type CommandName, serverMessageSchema } from "./abuse-protocol.ts";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Start-up includes making the tiny model's files when they are missing, on a loaded machine. */
const READY_LIMIT_MS = 180_000;
/** A command's answer (a full GC, a readdir) comes well within this, unless the server is stuck. */
const ANSWER_LIMIT_MS = 120_000;
/** After the channel closes, the server has this long to close its sockets and end before it is killed. */
const STOP_LIMIT_MS = 10_000;

/** What a command takes beside its name: only watch-socket takes anything. */
type CommandArguments<C extends CommandName> = C extends "watch-socket" ? [{ clientId: string }] : [];

export interface AbuseServerProcess {
  readonly url: string;
  readonly pid: number;
  ask<C extends CommandName>(command: C, ...args: CommandArguments<C>): Promise<Answer<C>>;
  /** Ends the process (gracefully, then SIGKILL); resolves once it is gone. Safe to call more than once. */
  stop(): Promise<void>;
}

interface Waiting {
  readonly command: CommandName;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

function exitDescription(child: ChildProcess): string {
  return child.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`;
}

export async function startAbuseServer(dataDir: string): Promise<AbuseServerProcess> {
  const child = spawn(process.execPath, ["--expose-gc", path.join(repo, "bin", "run-ts.js"), path.join(repo, "bench", "abuse-server.ts"), dataDir], {
    cwd: repo,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit").then(() => undefined);
  const waiting = new Map<number, Waiting>();
  let nextId = 1;
  let markReady: (url: string) => void = () => {};
  let failReady: (error: Error) => void = () => {};
  const ready = new Promise<string>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // An exit after the wait for readiness gave up must not be an unhandled rejection.
  ready.catch(() => {});

  child.on("message", (raw: unknown) => {
    const parsed = serverMessageSchema.safeParse(raw);
    if (!parsed.success) {
      failReady(new Error(`the abuse server sent a message abuse-protocol.ts does not know: ${parsed.error.message}`));
      return;
    }
    const message = parsed.data;
    if ("ready" in message) return markReady(message.ready);
    const entry = waiting.get(message.id);
    if (!entry) return;
    waiting.delete(message.id);
    clearTimeout(entry.timer);
    if (!message.ok) return entry.reject(new Error(`abuse server, ${entry.command}: ${message.error}`));
    const answer = answerSchemas[entry.command].safeParse(message.result);
    if (answer.success) entry.resolve(answer.data);
    else entry.reject(new Error(`abuse server, ${entry.command}: an answer of the wrong shape: ${answer.error.message}`));
  });
  child.on("exit", () => {
    const gone = new Error(`the abuse server (pid ${child.pid}) ${exitDescription(child)}`);
    failReady(gone);
    for (const entry of waiting.values()) {
      clearTimeout(entry.timer);
      entry.reject(gone);
    }
    waiting.clear();
  });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // Closing the channel is the child's signal to close its server and end.
      if (child.connected) child.disconnect();
      else child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_LIMIT_MS);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };

  let readyTimer: NodeJS.Timeout | undefined;
  try {
    const url = await Promise.race([
      ready,
      new Promise<never>((_, reject) => (readyTimer = setTimeout(() => reject(new Error(`the abuse server was not ready after ${READY_LIMIT_MS / 1000} s`)), READY_LIMIT_MS))),
    ]);
    return {
      url,
      pid: child.pid ?? -1,
      stop,
      ask<C extends CommandName>(command: C, ...args: CommandArguments<C>): Promise<Answer<C>> {
        return new Promise<Answer<C>>((resolve, reject) => {
          if (!child.connected) return reject(new Error(`abuse server, ${command}: the server process ${exitDescription(child)}`));
          const id = nextId++;
          const timer = setTimeout(() => {
            waiting.delete(id);
            reject(new Error(`abuse server, ${command}: no answer after ${ANSWER_LIMIT_MS / 1000} s`));
          }, ANSWER_LIMIT_MS);
          waiting.set(id, { command, resolve: (result) => resolve(result as Answer<C>), reject, timer });
          child.send({ id, command, ...args[0] });
        });
      },
    };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(readyTimer);
  }
}
