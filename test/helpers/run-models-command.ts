import { Writable } from "node:stream";
import { type ModelsCommandContext, modelsCommand } from "../../server/cli/models-command.ts";

/** Runs `maskflow models ...` with its output captured; env comes from the test, never from process.env. */
export async function runModelsCommand(args: string[], context: ModelsCommandContext): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk, _encoding, callback) {
        append(String(chunk));
        callback();
      },
    });
  const code = await modelsCommand(args, { stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)) }, { retryDelayMs: 1, ...context });
  return { code, stdout, stderr };
}
