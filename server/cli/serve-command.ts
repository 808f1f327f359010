import { parseArgs } from "node:util";
import path from "node:path";
import { createEngines } from "../engines/create-engines.ts";
import { pullCommandFor, resolveModelsDir } from "../models/models-folder.ts";
import { DEFAULT_MODEL_NAME, ModelPullService } from "../models/model-pull-service.ts";
import { SettingsStore, segmindKeyFrom } from "../storage/settings-store.ts";
import { parseApiKeys } from "../http/api-keys.ts";
import { normalizeAllowedHost, parseAllowedHosts } from "../http/origin-guard.ts";
import { startServer } from "../maskflow-server.ts";
import { describeListenError } from "./listen-error.ts";
import type { LoraUse } from "../models/checkpoint/model-recipe.ts";
import { parseLoraOption } from "./lora-option.ts";
import type { CliIo } from "./cli-io.ts";

export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string", default: process.env.MASKFLOW_HOST ?? "127.0.0.1" },
      port: { type: "string", default: process.env.MASKFLOW_PORT ?? "8188" },
      data: { type: "string", default: process.env.MASKFLOW_DATA_DIR ?? "data" },
      model: { type: "string" },
      lora: { type: "string", multiple: true, default: [] },
      device: { type: "string" },
      "max-queue": { type: "string", default: "100" },
      "allow-remote-without-key": { type: "boolean", default: false },
      "max-queue-per-client": { type: "string" },
      redis: { type: "string", default: process.env.MASKFLOW_REDIS_URL },
      "allow-host": { type: "string", multiple: true },
    },
  });
  // Names beyond the loopback ones that Host headers may carry: a reverse proxy's public name, a LAN name.
  const allowedHosts = [...parseAllowedHosts(process.env.MASKFLOW_ALLOWED_HOSTS), ...(values["allow-host"] ?? [])];
  for (const name of allowedHosts) {
    if (!normalizeAllowedHost(name)) {
      io.stderr.write(`maskflow serve: --allow-host "${name}" is not a host name: give a name or address such as maskflow.example.org or 192.168.1.20, without scheme, port or path\n`);
      return 2;
    }
  }
  const apiKeys = parseApiKeys(process.env.MASKFLOW_API_KEYS);
  if (!isLoopbackHost(values.host) && !apiKeys.length && !values["allow-remote-without-key"]) {
    io.stderr.write(
      `maskflow serve: refusing to listen on ${values.host} without API keys: anyone who can reach it could use it.\n` +
        "  Set MASKFLOW_API_KEYS=key1,key2 (clients send x-api-key), or pass --allow-remote-without-key on a trusted network.\n",
    );
    return 2;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.stderr.write(`maskflow serve: --port must be a whole number from 0 to 65535, got "${values.port}"\n`);
    return 2;
  }
  const maxPending = Number(values["max-queue"]);
  if (!Number.isInteger(maxPending) || maxPending < 1) {
    io.stderr.write(`maskflow serve: --max-queue must be a whole number ≥ 1, got "${values["max-queue"]}"\n`);
    return 2;
  }
  let maxPendingPerClient: number | undefined;
  if (values["max-queue-per-client"] !== undefined) {
    maxPendingPerClient = Number(values["max-queue-per-client"]);
    if (!Number.isInteger(maxPendingPerClient) || maxPendingPerClient < 1) {
      io.stderr.write(`maskflow serve: --max-queue-per-client must be a whole number ≥ 1, got "${values["max-queue-per-client"]}"\n`);
      return 2;
    }
  }
  let loras: LoraUse[];
  try {
    loras = await Promise.all((values.lora ?? []).map((value) => parseLoraOption(value)));
  } catch (error) {
    io.stderr.write(`maskflow serve: ${(error as Error).message}\n`);
    return 2;
  }
  const settings = await new SettingsStore(path.join(path.resolve(values.data), "settings.json")).load();
  const engines = await createEngines({ modelDir: values.model, loras, device: values.device, segmind: { apiKey: segmindKeyFrom(settings) } });
  // The editor's Download model button runs the same pull as `maskflow models pull`, into the folder the engine reads.
  const modelsDir = resolveModelsDir(undefined);
  const modelPulls = new ModelPullService({ env: process.env, modelsDir, engine: engines.local });
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({
      host: values.host,
      port,
      dataDir: values.data,
      settings,
      maxPending,
      maxPendingPerClient,
      redisUrl: values.redis || undefined,
      engines: engines.nodeEngines,
      apiKeys,
      allowedHosts,
      engineStatus: () => engines.status(),
      releaseModels: () => engines.releaseModels(),
      modelPulls,
    });
  } catch (error) {
    await engines.dispose();
    const line = describeListenError(error, values.host, port);
    if (!line) throw error;
    io.stderr.write(`maskflow serve: ${line}\n`);
    return 1;
  }
  io.stdout.write(`Maskflow is running at ${server.url}/\n`);
  io.stdout.write(`  data folder: ${server.folders.root}\n`);
  if (!isLoopbackHost(values.host)) {
    const names = ["localhost", "127.0.0.1", ...(values.host === "0.0.0.0" || values.host === "::" ? [] : [values.host]), ...allowedHosts];
    io.stdout.write(`  answers to the host names: ${names.join(", ")} (add others with --allow-host NAME)\n`);
  }
  if (values.redis) io.stdout.write(`  queue: Redis at ${values.redis}; jobs run on \`maskflow worker --redis …\` processes\n`);
  for (const [name, state] of Object.entries(engines.status())) {
    if (name === "local" && !engines.local.status().installed) {
      // The first thing a fresh install needs: the one command, and the button that does the same.
      const command = pullCommandFor(engines.local.defaultModelDir, modelsDir, DEFAULT_MODEL_NAME);
      io.stdout.write(`  engine local: no model at ${engines.local.defaultModelDir} yet: run \`${command}\`, or click Download model in the editor\n`);
      continue;
    }
    io.stdout.write(`  engine ${name}: ${typeof state === "object" && state && "summary" in state ? String(state.summary) : JSON.stringify(state)}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  io.stdout.write("Maskflow is stopping…\n");
  await modelPulls.close();
  await server.close();
  await engines.dispose();
  return 0;
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
