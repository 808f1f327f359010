import { WebSocket } from "ws";

export interface CollectedMessage {
  readonly type: string;
  readonly data: any;
  readonly binary?: Buffer;
}

/** A WebSocket client that records every message, with a bounded wait for the one you expect. */
export async function connectClient(url: string, clientId: string) {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/ws?clientId=${encodeURIComponent(clientId)}`);
  const messages: CollectedMessage[] = [];
  const waiters: Array<() => void> = [];
  socket.on("message", (payload, isBinary) => {
    const buffer = Buffer.isBuffer(payload) ? payload : Buffer.from(payload as ArrayBuffer);
    messages.push(isBinary ? { type: "binary", data: undefined, binary: buffer } : JSON.parse(buffer.toString("utf8")));
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  return {
    socket,
    messages,
    async waitFor(predicate: (m: CollectedMessage) => boolean, timeoutMs = 15_000): Promise<CollectedMessage> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find(predicate);
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for a message; got: ${messages.map((m) => m.type).join(", ")}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    close() {
      socket.terminate();
    },
  };
}
