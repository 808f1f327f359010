import { MultiBar, type SingleBar } from "cli-progress";
import type { ExecutionEvent } from "../executor/execution-event.ts";
import type { CliIo } from "./cli-io.ts";

/**
 * One progress bar for a whole `run --batch` (pictures done of all, and what the current one is doing),
 * with each picture's result printed above it as it ends. Without a terminal: one line per result and
 * at most one progress line a second.
 */
export class BatchProgressView {
  readonly #io: CliIo;
  readonly #total: number;
  readonly #types: ReadonlyMap<string, string>;
  readonly #multi: MultiBar | undefined;
  readonly #bar: SingleBar | undefined;
  #finished = 0;
  #item = "";
  #node = "";
  #lastLine = 0;

  constructor(io: CliIo, total: number, types: ReadonlyMap<string, string>) {
    this.#io = io;
    this.#total = total;
    this.#types = types;
    if (io.stderr.isTTY) {
      this.#multi = new MultiBar({
        stream: io.stderr,
        hideCursor: true,
        clearOnComplete: false,
        format: "batch [{bar}] {value}/{total} {eta_formatted} | {item} {detail}",
      });
      this.#bar = this.#multi.create(total, 0, { item: "", detail: "" });
    }
  }

  startItem(stem: string): void {
    this.#item = stem;
    this.#node = "";
    this.#bar?.update(this.#finished, { item: stem, detail: "" });
  }

  onEvent(event: ExecutionEvent): void {
    if (event.type === "executing") {
      this.#node = `node ${event.node} (${this.#types.get(event.node) ?? "?"})`;
      this.#bar?.update(this.#finished, { item: this.#item, detail: this.#node });
    } else if (event.type === "progress") {
      const detail = `${this.#node} ${event.label ? `${event.label} ` : ""}${event.value}/${event.max}`;
      if (this.#bar) this.#bar.update(this.#finished, { item: this.#item, detail });
      else if (Date.now() - this.#lastLine > 1000) {
        this.#lastLine = Date.now();
        this.#io.stderr.write(`[${this.#finished + 1}/${this.#total}] ${this.#item}: ${detail}\n`);
      }
    }
  }

  /** A picture ended (or never started): its line, and the bar moves on. */
  finishItem(line: string): void {
    this.#finished++;
    const text = `[${this.#finished}/${this.#total}] ${line}\n`;
    this.#bar?.update(this.#finished, { item: "", detail: "" });
    if (this.#multi) {
      // log() only queues the line for the next redraw; redraw now, so a line is never lost to stop().
      this.#multi.log(text);
      this.#multi.update();
    } else this.#io.stderr.write(text);
  }

  stop(): void {
    this.#multi?.stop();
  }
}
