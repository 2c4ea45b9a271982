#!/usr/bin/env node
// Generates docs/connection-machine.mmd (Mermaid) and docs/connection-machine.svg (Graphviz, rendered offline by
// @viz-js/viz) from the XState machine in machines/connection.machine.ts.
//
//   npm run diagram              write both files
//   npm run diagram -- --check   exit 1 if either file on disk differs from what would be written
//
// The machine and scripts/diagram-lib.ts are TypeScript: esbuild bundles them (packages left external) to a
// temporary .mjs under node_modules/.cache, which is imported and deleted.
import { build } from "esbuild";
import { instance } from "@viz-js/viz";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outputs = {
  mermaid: join(root, "docs", "connection-machine.mmd"),
  svg: join(root, "docs", "connection-machine.svg"),
};

async function loadModules() {
  const cacheDir = join(root, "node_modules", ".cache", "connection-diagram");
  await mkdir(cacheDir, { recursive: true });
  const outfile = join(cacheDir, `bundle-${process.pid}-${Date.now()}.mjs`);
  await build({
    stdin: {
      contents: [
        'export { connectionMachine } from "./machines/connection.machine.ts";',
        'export * as lib from "./scripts/diagram-lib.ts";',
      ].join("\n"),
      resolveDir: root,
      sourcefile: "diagram-entry.ts",
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "warning",
  });
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    await rm(outfile, { force: true });
  }
}

async function renderSvg(dot) {
  const viz = await instance();
  const result = viz.render(dot, { format: "svg" });
  for (const e of result.errors) console.error(`graphviz ${e.level ?? "message"}: ${e.message.trim()}`);
  if (result.status !== "success") throw new Error("Graphviz failed to render the DOT source");
  return result.output;
}

async function readOrUndefined(file) {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if (error && error.code === "ENOENT") return undefined;
    throw error;
  }
}

async function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`usage: node scripts/diagram.mjs [--check]   (unknown argument: ${unknown.join(" ")})`);
    process.exit(2);
  }
  const check = args.includes("--check");

  const started = performance.now();
  const { connectionMachine, lib } = await loadModules();
  const mermaid = lib.toMermaid(connectionMachine);
  const svg = await renderSvg(lib.toDot(connectionMachine));
  const fresh = { mermaid, svg };
  const normalize = { mermaid: lib.normalizeText, svg: lib.normalizeSvg };

  if (check) {
    const stale = [];
    for (const kind of /** @type {const} */ (["mermaid", "svg"])) {
      const onDisk = await readOrUndefined(outputs[kind]);
      const file = relative(root, outputs[kind]);
      if (onDisk === undefined) stale.push(`${file} is missing`);
      else if (normalize[kind](onDisk) !== normalize[kind](fresh[kind])) stale.push(`${file} is out of date`);
    }
    if (stale.length > 0) {
      console.error(
        `The state machine diagrams do not match machines/connection.machine.ts:\n` +
          stale.map((s) => `  - ${s}`).join("\n") +
          `\nRun \`npm run diagram\` and commit the result.`,
      );
      process.exit(1);
    }
    console.log(`Diagrams are up to date (${Math.round(performance.now() - started)} ms).`);
    return;
  }

  await mkdir(dirname(outputs.mermaid), { recursive: true });
  for (const kind of /** @type {const} */ (["mermaid", "svg"])) {
    const file = outputs[kind];
    const before = await readOrUndefined(file);
    const changed = before === undefined || normalize[kind](before) !== normalize[kind](fresh[kind]);
    if (changed) await writeFile(file, fresh[kind]);
    const size = Buffer.byteLength(fresh[kind]);
    console.log(`${changed ? "wrote    " : "unchanged"} ${relative(root, file)} (${size} bytes)`);
  }
  console.log(`done in ${Math.round(performance.now() - started)} ms`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
