/** `maskflow <command>`: the one entry point of the command line. */
import type { CliIo } from "./cli-io.ts";
import { runCommand } from "./run-command.ts";
import { serveCommand } from "./serve-command.ts";
import { validateCommand } from "./validate-command.ts";


type Command = (args: string[], io: CliIo) => Promise<number>;

const commands: Record<string, { run: () => Promise<Command>; summary: string }> = {
  serve: {
    run: async () => serveCommand,
    summary:
      "serve [--host 127.0.0.1] [--port 8188] [--data DIR] [--model DIR|CHECKPOINT] [--lora FILE[:SM[:SC]] ...] [--device cpu|cuda] [--max-queue N]\n" +
      "                 [--max-queue-per-client N] [--redis URL] [--allow-remote-without-key]   start the editor, API and WebSocket",
  },
  run: {
    run: async () => runCommand,
    summary: "run WORKFLOW.json [--set NODE.INPUT=VALUE ...] [--batch NODE.INPUT=FOLDER ...] [--out DIR]   run a workflow headless, once or per picture",
  },
  validate: { run: async () => validateCommand, summary: "validate WORKFLOW.json [--data DIR] [--json]   check a workflow and list every problem" },
  models: {
    run: async () => (await import("./models-command.ts")).modelsCommand,
    summary: "models pull [REPO] [--revision REV] | import FILE|DIR [--name NAME] | list | verify [NAME]   download, build from a checkpoint, check",
  },
  worker: {
    run: async () => (await import("./worker-command.ts")).workerCommand,
    summary: "worker --redis URL [--concurrency N] [--model DIR] [--data DIR]   take jobs from a Redis queue",
  },
  tokenize: {
    run: async () => (await import("./tokenize-command.ts")).tokenizeCommand,
    summary: 'tokenize [--tokenizer DIR] "TEXT"   show the CLIP token ids of a prompt',
  },
};

export function usage(): string {
  return ["usage: maskflow <command> [options]", "", "commands:", ...Object.values(commands).map((c) => `  maskflow ${c.summary}`)].join("\n");
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(usage() + "\n");
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    io.stderr.write(`maskflow: unknown command "${name}"; commands: ${Object.keys(commands).join(", ")}\n\n${usage()}\n`);
    return 2;
  }
  try {
    return await (await command.run())(rest, io);
  } catch (error) {
    io.stderr.write(`maskflow ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
}
