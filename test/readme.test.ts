/**
 * The README's TypeScript examples must compile against the package as it is: each ```ts block is written to
 * a scratch folder inside the project and type-checked with the project's tsc.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(__dirname, "..");
const readme = readFileSync(join(root, "README.md"), "utf8");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** What the examples take from their surroundings. */
const ambient = `
import type { MatrixClient } from "matrix-js-sdk";
import type { CallMembership } from "matrix-js-sdk/lib/matrixrtc";
import type { ConnectionOpts, MembershipWithTransport } from "${root}/src";
declare global {
  const matrixClient: MatrixClient;
  const opts: ConnectionOpts;
  const trace: unknown[];
  const memberships: MembershipWithTransport<CallMembership>[];
}
export {};
`;

test("the README has TypeScript examples", () => {
  expect(blocks.length).toBeGreaterThanOrEqual(2);
});

test("every TypeScript example in the README type-checks", () => {
  const dir = join(root, "node_modules", ".cache", "readme-check");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "ambient.d.ts"), ambient);
  blocks.forEach((code, i) => {
    const source = code.replace(
      /from "matrixrtc-connection-machine(\/view)?"/g,
      (_, view?: string) => `from "${root}/src${view ?? ""}"`,
    );
    writeFileSync(join(dir, `example${i}.ts`), `${source}\nexport {};\n`);
  });
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: join(root, "tsconfig.json"),
      compilerOptions: { noEmit: true, types: ["node"], noUnusedLocals: false },
      include: ["*.ts"],
    }),
  );
  try {
    execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", dir], { encoding: "utf8", timeout: 60_000 });
  } catch (e) {
    throw new Error(`README examples do not type-check:\n${(e as { stdout?: string }).stdout}`, { cause: e });
  }
});
