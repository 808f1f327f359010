/**
 * Does onnxruntime-node here run on CUDA? Opens a one-node graph (y = x + x) with the CUDA execution provider
 * alone, so a missing provider library, CUDA or cuDNN is an error instead of a silent fall-back to the CPU,
 * runs it, and checks the answer. Exit 0: CUDA works; 3: it does not (the reason and the fix on stderr).
 *
 *   node bin/run-ts.js scripts/real-size/check-cuda-provider.ts [--json]
 */
import * as ort from "onnxruntime-node";

// The reason is reported below in one line; onnxruntime's own log would repeat it in colour.
ort.env.logLevel = "fatal";

// The graph `y = Add(x, x)` for float[2], opset 17, as onnx.helper writes it (48 bytes).
const ADD_GRAPH = "CAgSCG1hc2tmbG93Oj4KDgoBeAoBeBIBeSIDQWRkEgpjdWRhX2NoZWNrWg8KAXgSCgoICAESBAoCCAJiDwoBeRIKCggIARIECgIIAkIECgAQEQ==";
const INSTALL = "ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js";

interface ProviderCheck {
  readonly ok: boolean;
  readonly onnxruntime: string;
  readonly cudaBundled: boolean | null;
  readonly message: string;
}

async function checkCuda(): Promise<ProviderCheck> {
  const onnxruntime = ort.env.versions?.node ?? "unknown";
  const backend = ort.listSupportedBackends?.().find((b) => b.name === "cuda");
  const cudaBundled = backend ? backend.bundled : null;
  if (!backend) {
    return { ok: false, onnxruntime, cudaBundled, message: `this onnxruntime-node build (${onnxruntime}, ${process.platform}-${process.arch}) has no CUDA provider at all` };
  }
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(Buffer.from(ADD_GRAPH, "base64"), { executionProviders: ["cuda"], logSeverityLevel: 4 });
    const x = new ort.Tensor("float32", Float32Array.of(1.5, -2), [2]);
    const { y } = await session.run({ x });
    const values = Array.from(y.data as Float32Array);
    if (values[0] !== 3 || values[1] !== -4) return { ok: false, onnxruntime, cudaBundled, message: `the CUDA provider answered ${JSON.stringify(values)} for 1.5 + 1.5, -2 + -2` };
    return { ok: true, onnxruntime, cudaBundled, message: `onnxruntime-node ${onnxruntime} runs on CUDA` };
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    return {
      ok: false,
      onnxruntime,
      cudaBundled,
      message: `onnxruntime-node ${onnxruntime} cannot open a session on CUDA (${reason}); on a machine with CUDA 12 and cuDNN 9 fetch the provider with \`${INSTALL}\``,
    };
  } finally {
    await session?.release();
  }
}

const result = await checkCuda();
if (process.argv.includes("--json")) console.log(JSON.stringify(result));
(result.ok ? process.stdout : process.stderr).write(`check-cuda-provider: ${result.message}\n`);
process.exitCode = result.ok ? 0 : 3;
