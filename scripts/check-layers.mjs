#!/usr/bin/env node
// The layering of src/ (docs/architecture.md, "Layers"), checked over the TypeScript import graph:
// every import, export-from, import type, import() and typeof import('…') between files of src/.
// `npm run lint` runs it; it exits 1 naming file:line, the import and the rule for each violation.
//
// Rules:
// - layer: a folder imports only the folders its row of LAYERS allows (the table in the doc);
// - contract: files of a concrete backend (src/backends/<name>/) import, outside their own folder, only
//   the backend contract (backends/backend.ts, dtype.ts, philox.ts, the dropout stream backend.ts
//   specifies, and bf16-views.ts, the meaning of a kernel on bf16 views) and addon-binding.ts (the descriptor binding the two N-API addon backends share);
// - registry: nothing imports a concrete backend except backends/registry.ts.
// KNOWN lists violations that are accepted for now, each with the reason; an entry that no longer
// matches anything is itself an error, so fixing a violation forces its entry out.
//
// Usage: node scripts/check-layers.mjs [--root DIR] (DIR holds src/; default: this repository).

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Folder (or top-level file) of src/ → the folders it may import. Acyclic (checked below). */
export const LAYERS = {
  backends: [],
  tensor: ['backends'],
  autograd: ['tensor', 'backends'],
  ops: ['autograd', 'tensor', 'backends'],
  nn: ['ops', 'autograd', 'tensor', 'backends'],
  optim: ['ops', 'autograd', 'tensor', 'backends'],
  io: ['tensor', 'backends'],
  metrics: [],
  data: ['io', 'tensor', 'backends'],
  models: ['nn', 'ops', 'autograd', 'io', 'tensor', 'backends'],
  generate: ['models', 'nn', 'ops', 'autograd', 'io', 'tensor', 'backends'],
  adapters: ['models', 'nn', 'ops', 'autograd', 'io', 'tensor', 'backends'],
  pretrain: ['generate', 'models', 'optim', 'data', 'metrics', 'nn', 'ops', 'autograd', 'io', 'tensor', 'backends'],
  train: [
    'adapters',
    'generate',
    'models',
    'optim',
    'data',
    'metrics',
    'nn',
    'ops',
    'autograd',
    'io',
    'tensor',
    'backends',
  ],
  serve: ['adapters', 'generate', 'models', 'nn', 'ops', 'autograd', 'io', 'tensor', 'backends'],
  experiments: ['train', 'adapters', 'data', 'metrics', 'io', 'backends'],
  cli: [
    'experiments',
    'serve',
    'train',
    'pretrain',
    'adapters',
    'generate',
    'models',
    'optim',
    'data',
    'metrics',
    'nn',
    'ops',
    'autograd',
    'io',
    'tensor',
    'backends',
  ],
  // The library's public entry point: everything but the command line and the experiment scripts.
  'index.ts': [
    'serve',
    'train',
    'pretrain',
    'adapters',
    'generate',
    'models',
    'optim',
    'data',
    'metrics',
    'nn',
    'ops',
    'autograd',
    'io',
    'tensor',
    'backends',
  ],
};

/** The backend contract, which concrete backends may import. */
const CONTRACT = [
  'src/backends/backend.ts',
  'src/backends/dtype.ts',
  'src/backends/philox.ts',
  'src/backends/bf16-views.ts',
  'src/backends/addon-binding.ts',
];
const REGISTRY = 'src/backends/registry.ts';

/** Accepted violations: { from (a path prefix), to (a file), why }. None today; keep it that way. */
export const KNOWN = [];

/** The layer of a file: its top folder under src/ (a top-level file is its own layer). */
function layerOf(file) {
  return file.split('/')[1];
}

/** The concrete backend a file belongs to (src/backends/<name>/…), or null. */
function backendOf(file) {
  const parts = file.split('/');
  return parts[1] === 'backends' && parts.length > 3 ? parts[2] : null;
}

/** Every module specifier of a file with its 1-based line. */
export function importsOf(text, fileName) {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out = [];
  const add = (spec) => {
    if (spec && ts.isStringLiteralLike(spec))
      out.push({ spec: spec.text, line: source.getLineAndCharacterOfPosition(spec.getStart(source)).line + 1 });
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference))
      add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

function sourceFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(m|c)?ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The file a relative specifier names (the .ts behind a .js specifier), as a root-relative path. */
function resolveSpec(root, fromFile, spec) {
  const abs = resolve(root, dirname(fromFile), spec);
  const candidates = [abs.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts'), abs, `${abs}.ts`, join(abs, 'index.ts')];
  const hit = candidates.find((c) => existsSync(c) && !c.endsWith(sep)) ?? candidates[0];
  return relative(root, hit).split(sep).join('/');
}

/** The rule an import breaks, or null. */
function broken(from, to) {
  const fromBackend = backendOf(from);
  const toBackend = backendOf(to);
  if (toBackend !== null && fromBackend !== toBackend && from !== REGISTRY)
    return `registry: nothing imports a concrete backend (src/backends/${toBackend}/) except ${REGISTRY}`;
  if (fromBackend !== null && toBackend !== fromBackend && !CONTRACT.includes(to))
    return `contract: src/backends/${fromBackend}/ depends on the backend contract only (${CONTRACT.join(', ')})`;
  const a = layerOf(from);
  const b = layerOf(to);
  if (a === b) return null;
  const allowed = LAYERS[a];
  if (allowed === undefined) return `layer: src/${a} has no row in the layer table (scripts/check-layers.mjs LAYERS)`;
  if (!allowed.includes(b))
    return `layer: ${a} may import ${allowed.length ? allowed.join(', ') : 'nothing outside itself'} — not ${b} (docs/architecture.md)`;
  return null;
}

/** A cycle in the layer table itself (the order must be a DAG), as a list of layers, or null. */
export function tableCycle(layers = LAYERS) {
  const state = new Map();
  const path = [];
  const visit = (n) => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...path.slice(path.indexOf(n)), n];
    state.set(n, 'open');
    path.push(n);
    for (const m of layers[n] ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of Object.keys(layers)) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

/** Checks src/ under `root`: { violations: ['file:line: import → target: rule'], known: [...], stale: [...] }. */
export function checkLayers(root, allowed = KNOWN) {
  const violations = [];
  const used = new Map(allowed.map((k) => [k, 0]));
  for (const abs of sourceFiles(join(root, 'src'))) {
    const file = relative(root, abs).split(sep).join('/');
    for (const { spec, line } of importsOf(readFileSync(abs, 'utf8'), abs)) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const to = resolveSpec(root, file, spec);
      if (!to.startsWith('src/')) continue;
      const rule = broken(file, to);
      if (rule === null) continue;
      const known = allowed.find((k) => file.startsWith(k.from) && to === k.to);
      if (known) used.set(known, used.get(known) + 1);
      else violations.push(`${file}:${line}: imports '${spec}' (${to}): ${rule}`);
    }
  }
  const known = allowed
    .filter((k) => used.get(k) > 0)
    .map((k) => `${k.from}* → ${k.to}: ${used.get(k)} imports (${k.why})`);
  const stale = allowed
    .filter((k) => used.get(k) === 0)
    .map(
      (k) =>
        `allow-list entry ${k.from}* → ${k.to} matches no import any more: delete it from KNOWN in scripts/check-layers.mjs`,
    );
  return { violations, known, stale };
}

function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf('--root');
  const root = at >= 0 ? resolve(args[at + 1] ?? '.') : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const cycle = tableCycle();
  if (cycle) {
    console.error(`[check-layers] the layer table has a cycle: ${cycle.join(' → ')}`);
    process.exit(1);
  }
  const { violations, known, stale } = checkLayers(root);
  for (const k of known) console.log(`[check-layers] known violation, allowed for now: ${k}`);
  for (const v of [...violations, ...stale]) console.error(`[check-layers] ${v}`);
  if (violations.length + stale.length > 0) {
    console.error(
      `[check-layers] ${violations.length + stale.length} problem(s); the layers are in docs/architecture.md`,
    );
    process.exit(1);
  }
  console.log('[check-layers] src/ follows the layer rules');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
