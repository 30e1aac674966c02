// Checks the shape of src/: no import cycles between modules (files), and no upward imports: nothing below the
// engine imports it, and the faces (cli/) reach the rest only through the engine's surface. Type-only imports
// count too (a cycle of types is still a knot in the design). Exit 1 with one line per problem.
//   node scripts/check-imports.mjs [--quiet]
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'src');

/** Modules a face may import: the engine's surface, errors, and what presents its results. */
const FACE_ALLOWED = [
  /^engine\.ts$/,
  /^engine\//,
  /^errors\.ts$/,
  /^gotemplate\//,
  /^util\/units\.ts$/, // docker's units, shared by the engine (Status) and the faces' columns
  /^cli\//,
  /^service\//, // the service runs the CLI in warm workers: part of the command-line face
  /^api\//, // the Engine API server, which `ply system service` runs
];

/** The faces: they sit on top of the engine. */
const FACES = [/^cli\//, /^api\//];

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every relative import of a file: static, dynamic and `import('…')` types; `type` marks type-only ones. */
function importsOf(file) {
  const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found = [];
  const add = (spec, type) => {
    if (!spec.startsWith('.')) return;
    const abs = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
    found.push({ target: path.relative(root, abs), type });
  };
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?\sfrom\s+['"]([^'"]+)['"]/gm)) add(m[3], !!m[2]);
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) add(m[1], false);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    // `typeof import('x')` and `import('x').T` in type positions are types; `await import('x')` loads.
    const before = text.slice(Math.max(0, m.index - 8), m.index);
    add(m[1], /typeof\s*$/.test(before) || text[m.index + m[0].length] === '.');
  }
  return found;
}

const files = walk(root).map((f) => path.relative(root, f));
const graph = new Map(files.map((f) => [f, importsOf(path.join(root, f))]));
const problems = [];

for (const [file, deps] of graph) {
  const isFace = FACES.some((r) => r.test(file));
  for (const d of deps) {
    if (!graph.has(d.target)) {
      problems.push(`${file}: imports ${d.target}, which does not exist`);
      continue;
    }
    const belowEngine = !isFace && file !== 'engine.ts' && !file.startsWith('engine/');
    if (belowEngine && (d.target === 'engine.ts' || d.target.startsWith('engine/'))) {
      problems.push(`${file}: imports the engine (${d.target}) from below it`);
    }
    if (isFace && !FACE_ALLOWED.some((r) => r.test(d.target))) {
      problems.push(`${file}: a face imports ${d.target} (only the engine's surface, errors and presentation)`);
    }
  }
}

// Cycles: Tarjan's strongly connected components over every import.
let index = 0;
const stack = [];
const info = new Map();
const sccs = [];
function strongConnect(v) {
  info.set(v, { index, low: index, on: true });
  index++;
  stack.push(v);
  for (const { target: w } of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!info.has(w)) {
      strongConnect(w);
      info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
    } else if (info.get(w).on) {
      info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
    }
  }
  if (info.get(v).low === info.get(v).index) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      info.get(w).on = false;
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).some((d) => d.target === v)) sccs.push(comp.sort());
  }
}
for (const f of files) if (!info.has(f)) strongConnect(f);
for (const c of sccs) problems.push(`import cycle: ${c.join(' <-> ')}`);

if (problems.length > 0) {
  for (const p of problems) process.stderr.write(`check-imports: ${p}\n`);
  process.exit(1);
}
if (!process.argv.includes('--quiet')) process.stdout.write(`check-imports: ${files.length} modules, no cycles, no upward imports\n`);
