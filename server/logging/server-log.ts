/**
 * Where the server's own lines go. One sink is passed down from startServer, so an embedding program (or a test
 * that provokes an error on purpose) can collect the lines instead of having them printed.
 */
export interface ServerLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const consoleLog: ServerLog = {
  info: (message) => console.log(`maskflow: ${message}`),
  warn: (message) => console.warn(`maskflow: ${message}`),
  error: (message) => console.error(`maskflow: ${message}`),
};

/** The message of an expected failure; the stack too for one that is a bug, since that is where it is found. */
export function describeFailure(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}
