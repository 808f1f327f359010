/**
 * Retry-After on the queue's 429s says when a retry can succeed: the jobs that must end first times the
 * median recent job, 1..60 s. With jobs of about 10 ms that is 1 s, whatever one slow job took before.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../server/maskflow-server.ts";
import { retryAfterSeconds } from "../server/queue/queue-limits.ts";
import { createCountingRegistry, workflow } from "./helpers/counting-nodes.ts";
import { api, startTestServer } from "./helpers/test-server.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Parameters<typeof startTestServer>[0] = {}) {
  const server = await startTestServer({ registry: createCountingRegistry().registry, ...options });
  servers.push(server);
  return server;
}

/** About 10 ms of work: two steps of 5 ms. */
const quick = (value: number) => workflow([{ id: "1", type: "NumberSource", inputs: { value } }, { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps: 2, ms: 5 } }, { id: "3", type: "Collect", inputs: { value: ["2", "value"] } }]);
/** Runs until interrupted (about 5 s at most). */
const blocker = () => workflow([{ id: "1", type: "NumberSource" }, { id: "2", type: "Slow", inputs: { a: ["1", "value"], steps: 1000, ms: 5 } }, { id: "3", type: "Collect", inputs: { value: ["2", "value"] } }]);

async function runQuickJobs(server: RunningServer, count: number) {
  for (let i = 0; i < count; i++) {
    const { body } = await api(server, "POST", "/api/prompt", { workflow: quick(i % 100) });
    expect((await server.queue.waitFor(body.id)).status).toBe("success");
  }
}

async function startBlocker(server: RunningServer, clientId?: string) {
  const { body } = await api(server, "POST", "/api/prompt", { workflow: blocker(), clientId });
  for (let i = 0; i < 400 && server.queue.status().running !== body.id; i++) await new Promise((r) => setTimeout(r, 5));
  expect(server.queue.status().running).toBe(body.id);
  return body.id as string;
}

describe("Retry-After", () => {
  it("is the jobs ahead times the median recent job, within 1..60 s", () => {
    // One job of 260 s among nineteen of 10 ms: the average said 13 s; the median says 1.
    expect(retryAfterSeconds(1, [260_000, ...Array(19).fill(10)])).toBe(1);
    expect(retryAfterSeconds(3, [1500, 1500, 9000])).toBe(5);
    expect(retryAfterSeconds(4, [])).toBe(4);
    expect(retryAfterSeconds(0, [10])).toBe(1);
    expect(retryAfterSeconds(100, [10_000])).toBe(60);
  });

  it("says 1–2 s when the queue is full of jobs that take about 10 ms", async () => {
    const server = await start({ maxPending: 2 });
    await runQuickJobs(server, 5);
    const running = await startBlocker(server);
    for (const value of [1, 2]) expect((await api(server, "POST", "/api/prompt", { workflow: quick(value) })).status).toBe(200);
    const full = await api(server, "POST", "/api/prompt", { workflow: quick(3) });
    expect(full.status).toBe(429);
    expect(full.body.error.code).toBe("queue_full");
    const retryAfter = Number(full.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(full.body.error.message).toBe(`the queue is full (2 jobs waiting); try again in about ${retryAfter} s`);
    server.queue.interrupt(running);
    expect((await server.queue.waitFor(running)).status).toBe("interrupted");
  });

  it("says 1–2 s to a client at its own limit behind jobs that take about 10 ms", async () => {
    const server = await start({ maxPendingPerClient: 1 });
    await runQuickJobs(server, 5);
    const running = await startBlocker(server, "other");
    // Three jobs of others ahead of its own, and the running one: four jobs of about 10 ms.
    for (const value of [1, 2, 3]) expect((await api(server, "POST", "/api/prompt", { workflow: quick(value), clientId: `other-${value}` })).status).toBe(200);
    expect((await api(server, "POST", "/api/prompt", { workflow: quick(4), clientId: "me" })).status).toBe(200);
    const refused = await api(server, "POST", "/api/prompt", { workflow: quick(5), clientId: "me" });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("client_queue_full");
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    server.queue.interrupt(running);
    expect((await server.queue.waitFor(running)).status).toBe("interrupted");
  });
});
