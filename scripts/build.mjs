// Builds the package into dist/:
//   dist/index.mjs (+ .map)   ESM bundle of src/index.ts
//   dist/index.cjs (+ .map)   CJS bundle of src/index.ts
//   dist/view.{mjs,cjs}       the live statechart view (src/view.ts), the subpath export "./view"
//   dist/types/**.d.ts        declarations, emitted by TypeScript 7's native `tsc` (tsconfig.build.json)
//   dist/index.d.mts          `export *` of ./types/src/index.js, for `import` (exports map)
//   dist/index.d.cts          the same, for `require` (and dist/view.d.{mts,cts} for the view)
// The peers (xstate, livekit-client, rxjs, and their subpaths) stay external. The machines' state descriptions
// stay in the source, where Stately's editor and `npm run diagram` read them, and are left out of the bundles.
// Usage: node scripts/build.mjs   (npm run build)
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import ts from "typescript";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const PEERS = ["xstate", "livekit-client", "rxjs"];
const TSC_TIMEOUT_MS = 120_000;

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

const started = performance.now();

// 1. Clean.
rmSync(dist, { recursive: true, force: true });

// 2. Bundle, ESM and CJS.

/** Removes every `description: "…"` property from a machine file (read with TypeScript's parser). */
const withoutStateDescriptions = {
  name: "without-state-descriptions",
  setup(build) {
    build.onLoad({ filter: /[\\/]machines[\\/][^\\/]+\.machine\.ts$/ }, ({ path }) => {
      const text = readFileSync(path, "utf8");
      const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
      const cuts = [];
      const visit = (node) => {
        if (
          ts.isPropertyAssignment(node) &&
          node.name.getText(file) === "description" &&
          ts.isStringLiteralLike(node.initializer)
        ) {
          cuts.push([node.getStart(file), text[node.end] === "," ? node.end + 1 : node.end]);
        } else {
          ts.forEachChild(node, visit);
        }
      };
      visit(file);
      if (cuts.length === 0) fail(`${relative(root, path)}: no state descriptions found to leave out`);
      let contents = text;
      for (const [start, end] of cuts.reverse()) contents = contents.slice(0, start) + contents.slice(end);
      return { contents, loader: "ts" };
    });
  },
};

const common = {
  absWorkingDir: root,
  entryPoints: { index: "src/index.ts", view: "src/view.ts" },
  outdir: "dist",
  bundle: true,
  target: "es2022",
  platform: "neutral",
  external: PEERS.flatMap((p) => [p, `${p}/*`]),
  tsconfig: "tsconfig.json",
  minify: false,
  sourcemap: true,
  metafile: true,
  logLevel: "warning",
  plugins: [withoutStateDescriptions],
};

let results;
try {
  results = await Promise.all([
    esbuild.build({ ...common, format: "esm", outExtension: { ".js": ".mjs" } }),
    // platform "node" for CJS only: it adds the annotation that lets Node's ESM loader see named exports when
    // something imports index.cjs directly; the code itself uses no Node API.
    esbuild.build({ ...common, format: "cjs", platform: "node", outExtension: { ".js": ".cjs" } }),
  ]);
} catch (e) {
  fail(`esbuild failed: ${e.message}`);
}

// Nothing from node_modules may be inlined: the only imports of packages are the peers, which stay external.
for (const { metafile } of results) {
  const inlined = Object.keys(metafile.inputs).filter((f) => f.includes("node_modules"));
  if (inlined.length) fail(`dependencies got bundled, make them external or peers:\n  ${inlined.join("\n  ")}`);
  for (const [out, { imports }] of Object.entries(metafile.outputs)) {
    for (const imp of imports ?? []) {
      if (!imp.external) continue;
      const pkg = imp.path.startsWith("@") ? imp.path.split("/").slice(0, 2).join("/") : imp.path.split("/")[0];
      if (!PEERS.includes(pkg)) fail(`${out} imports ${imp.path}, which is not a peer dependency`);
    }
  }
}

// 3. Declarations with TypeScript 7 (native; no JS API, so run its CLI).
const tsc = join(root, "node_modules", ".bin", process.platform === "win32" ? "tsc.cmd" : "tsc");
const tscRun = spawnSync(tsc, ["-p", "tsconfig.build.json"], {
  cwd: root,
  encoding: "utf8",
  timeout: TSC_TIMEOUT_MS,
  shell: process.platform === "win32",
});
if (tscRun.error) fail(`could not run ${relative(root, tsc)}: ${tscRun.error.message}`);
if (tscRun.status !== 0) {
  fail(
    `declaration emit failed (tsc -p tsconfig.build.json, exit ${tscRun.status ?? tscRun.signal}):\n${tscRun.stdout}${tscRun.stderr}`,
  );
}

// 4. Entry declarations for the exports map. dist/types/** has no package.json "type" above it but the
// project's (none, so CommonJS-format .d.ts files); ESM consumers reach them through index.d.mts, which
// TypeScript allows like Node allows named imports of CJS modules. (xstate publishes its types the same way.)
for (const entry of ["index", "view"]) {
  const reexport = `export * from "./types/src/${entry}.js";\n`;
  writeFileSync(join(dist, `${entry}.d.mts`), reexport);
  writeFileSync(join(dist, `${entry}.d.cts`), reexport);
}

// 5. Sizes.
function sizeOfTree(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return { bytes: st.size, files: 1 };
  let bytes = 0;
  let files = 0;
  for (const e of readdirSync(path)) {
    const s = sizeOfTree(join(path, e));
    bytes += s.bytes;
    files += s.files;
  }
  return { bytes, files };
}

/** An entry as an app's bundler would ship it (ESM, minified, peers external): its bytes, and gzip -9 of them. */
async function minified(entry) {
  const out = await esbuild.build({
    ...common,
    entryPoints: [entry],
    outdir: undefined,
    format: "esm",
    minify: true,
    sourcemap: false,
    legalComments: "none",
    metafile: false,
    write: false,
    outfile: "dist/min.mjs",
  });
  const bytes = out.outputFiles[0].contents;
  return { bytes: bytes.length, gz: gzipSync(bytes, { level: 9 }).length };
}

const main = await minified("src/index.ts");

const rows = [
  "dist/index.mjs",
  "dist/index.mjs.map",
  "dist/index.cjs",
  "dist/index.cjs.map",
  "dist/index.d.mts",
  "dist/index.d.cts",
  "dist/view.mjs",
  "dist/view.cjs",
  "dist/types",
].map((f) => {
  const { bytes, files } = sizeOfTree(join(root, f));
  return [f + (files > 1 ? ` (${files} files)` : ""), bytes];
});
rows.push(["ESM minified (peers external)", main.bytes]);
const width = Math.max(...rows.map(([f]) => f.length));
console.log(`built in ${Math.round(performance.now() - started)} ms`);
for (const [f, bytes] of rows) console.log(`  ${f.padEnd(width)}  ${String(bytes).padStart(8)} B`);
console.log(`min+gz size (ESM, minified, gzip -9, peers external): ${main.gz} bytes`);

console.log(`  … the view ("./view"): ${(await minified("src/view.ts")).gz} bytes`);

// What an app bundles that imports one class from the ESM build (tree-shaken, minified, gzip -9, peers external).
for (const name of ["Connection", "ConnectionManager"]) {
  const shaken = await esbuild.build({
    stdin: { contents: `export { ${name} } from "./dist/index.mjs";`, resolveDir: root, loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    write: false,
    external: common.external,
  });
  console.log(`  … importing ${name} alone: ${gzipSync(shaken.outputFiles[0].contents, { level: 9 }).length} bytes`);
}
