/**
 * The /ws connection: JSON events and binary step previews, reconnecting by itself with
 * exponential backoff (0.5 s doubling to 10 s) so a restarted server is picked up without a reload.
 */
import type { ImageRef, ModelPullStatus } from "./maskflow-api.ts";
import type { WorkflowProblem } from "./maskflow-api.ts";

export type ServerEvent =
  | { type: "status"; data: { status: { queueRemaining: number; running: string | null }; sid?: string } }
  | { type: "execution_start"; data: { jobId: string } }
  | { type: "execution_cached"; data: { jobId: string; nodes: string[] } }
  | { type: "executing"; data: { jobId: string; node: string } }
  | { type: "progress"; data: { jobId: string; node: string; value: number; max: number; label?: string } }
  | { type: "executed"; data: { jobId: string; node: string; output: { images: ImageRef[]; values: Record<string, unknown> } } }
  | { type: "execution_error"; data: { jobId: string; node?: string; message: string; problems?: WorkflowProblem[] } }
  | { type: "execution_interrupted"; data: { jobId: string; node?: string } }
  | { type: "execution_success"; data: { jobId: string } }
  | { type: "model_pull"; data: ModelPullStatus };

export interface PreviewFrame {
  readonly nodeId: string;
  readonly jpeg: Blob;
}

export interface SocketHandlers {
  event(event: ServerEvent): void;
  preview(frame: PreviewFrame): void;
  connection(state: { connected: boolean; retryInMs?: number }): void;
}

/** Header of a binary frame (see server/http/preview-frame.ts): type u32, format u32, id length u16, id, JPEG. */
export function decodePreviewFrame(buffer: ArrayBuffer): PreviewFrame | undefined {
  if (buffer.byteLength < 10) return undefined;
  const view = new DataView(buffer);
  if (view.getUint32(0) !== 1 || view.getUint32(4) !== 1) return undefined;
  const idLength = view.getUint16(8);
  if (10 + idLength > buffer.byteLength) return undefined;
  const nodeId = new TextDecoder().decode(new Uint8Array(buffer, 10, idLength));
  return { nodeId, jpeg: new Blob([new Uint8Array(buffer, 10 + idLength)], { type: "image/jpeg" }) };
}

export class ServerSocket {
  #socket: WebSocket | undefined;
  #retryMs = 500;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(
    readonly clientId: string,
    readonly handlers: SocketHandlers,
  ) {}

  connect(): void {
    this.#closed = false;
    const url = new URL(`/ws?clientId=${encodeURIComponent(this.clientId)}`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    socket.onopen = () => {
      this.#retryMs = 500;
      this.handlers.connection({ connected: true });
    };
    socket.onmessage = (message: MessageEvent<string | ArrayBuffer>) => {
      if (typeof message.data === "string") {
        try {
          this.handlers.event(JSON.parse(message.data) as ServerEvent);
        } catch (error) {
          console.warn("maskflow: unreadable server event", error);
        }
      } else {
        const frame = decodePreviewFrame(message.data);
        if (frame) this.handlers.preview(frame);
      }
    };
    socket.onclose = () => {
      if (this.#socket !== socket || this.#closed) return;
      const wait = this.#retryMs;
      this.#retryMs = Math.min(this.#retryMs * 2, 10_000);
      this.handlers.connection({ connected: false, retryInMs: wait });
      this.#timer = setTimeout(() => this.connect(), wait);
    };
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#socket?.close();
  }
}
