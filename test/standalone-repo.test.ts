// A user's clone has nothing beside it. .ci/run runs the tests in a mount namespace where the repository's parent
// folder holds only the repository, and says so in MASKFLOW_CI_ALONE; this checks that the isolation really holds,
// so a test or fixture that reads a sibling folder fails in CI instead of passing on a developer's machine.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const alone = process.env.MASKFLOW_CI_ALONE;

describe.runIf(alone !== undefined)("the repository stands alone (CI)", () => {
  it("sees nothing beside the repository", async () => {
    expect(path.dirname(repoRoot)).toBe(alone);
    expect(await readdir(path.dirname(repoRoot))).toEqual([path.basename(repoRoot)]);
  });
});
