/** Where a command writes: the process's streams, or a test's. `isTTY` decides between a progress bar and plain lines. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}
