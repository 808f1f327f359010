import type { ServerLog } from "../../server/logging/server-log.ts";

export interface LogLine {
  readonly level: "info" | "warn" | "error";
  readonly message: string;
}

/** Collects a test server's lines, so errors a test provokes on purpose are asserted instead of printed. */
export class RecordingLog implements ServerLog {
  readonly lines: LogLine[] = [];
  info(message: string): void {
    this.lines.push({ level: "info", message });
  }
  warn(message: string): void {
    this.lines.push({ level: "warn", message });
  }
  error(message: string): void {
    this.lines.push({ level: "error", message });
  }
  /** The messages of one level (or of all), one per line. */
  text(level?: LogLine["level"]): string {
    return this.lines
      .filter((line) => level === undefined || line.level === level)
      .map((line) => line.message)
      .join("\n");
  }
}
