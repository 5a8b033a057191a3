// Minimal reader for an R package's lazy-load data base (data/Rdata.rdx + Rdata.rdb) holding character
// vectors, enough for Debian's r-cran-janeaustenr: R's XDR serialization of vectors, lists and pairlists.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';

/** A decoded R value: character/numeric vectors, lists; attributes kept as a name → value map. */
export type RValue =
  | null
  | { type: 'character'; values: (string | null)[]; attributes?: Map<string, RValue> }
  | { type: 'numeric'; values: number[]; attributes?: Map<string, RValue> }
  | { type: 'list'; values: RValue[]; attributes?: Map<string, RValue> }
  | { type: 'pairlist'; entries: [string | null, RValue][] }
  | { type: 'symbol'; name: string }
  | { type: 'other'; sexptype: number };

const NILVALUE = 254;
const REFSXP = 255;
// Special singletons written as a bare flags word (no payload).
const SINGLETONS = new Set([242, 241, 253, 251, 252, 248]); // EMPTYENV, BASEENV, GLOBALENV, MISSINGARG, UNBOUNDVALUE, BASENAMESPACE

/** Unserializes one R object written by serialize(..., xdr = TRUE) (format "X\n", versions 2 and 3). */
export function unserialize(buf: Buffer): RValue {
  let p = 0;
  const int = (): number => {
    const v = buf.readInt32BE(p);
    p += 4;
    return v;
  };
  const refs: RValue[] = [];
  if (buf.toString('latin1', 0, 2) !== 'X\n') throw new Error('[rdata] not an XDR serialization (expected "X\\n")');
  p = 2;
  const version = int();
  int(); // writer R version
  int(); // minimal reader R version
  if (version === 3) {
    const n = int(); // native encoding name (`p += int()` would read p before int() moves it)
    p += n;
  } else if (version !== 2) throw new Error(`[rdata] unsupported serialization version ${version}`);

  const length = (): number => {
    const n = int();
    if (n !== -1) return n;
    const hi = int();
    return hi * 2 ** 32 + (int() >>> 0);
  };
  const charsxp = (): string | null => {
    const flags = int();
    if ((flags & 0xff) !== 9) throw new Error(`[rdata] expected CHARSXP, got SEXP type ${flags & 0xff}`);
    const n = int();
    if (n === -1) return null;
    const s = buf.toString((flags >> 12) & 4 ? 'latin1' : 'utf8', p, p + n); // LATIN1_MASK is bit 2 of levels
    p += n;
    return s;
  };
  const attributes = (v: RValue & { attributes?: Map<string, RValue> }, hasAttr: boolean) => {
    if (!hasAttr) return v;
    const a = item();
    if (a && a.type === 'pairlist') v.attributes = new Map(a.entries.map(([k, x]) => [k ?? '', x]));
    return v;
  };
  const item = (): RValue => {
    const flags = int();
    const type = flags & 0xff;
    const hasAttr = (flags & (1 << 9)) !== 0;
    const hasTag = (flags & (1 << 10)) !== 0;
    if (type === NILVALUE || SINGLETONS.has(type)) return null;
    if (type === REFSXP) {
      const idx = flags >> 8 === 0 ? int() : flags >> 8;
      return refs[idx - 1] ?? null;
    }
    switch (type) {
      case 1: {
        // SYMSXP: a CHARSXP name, remembered for later references.
        const sym: RValue = { type: 'symbol', name: charsxp() ?? '' };
        refs.push(sym);
        return sym;
      }
      case 2: {
        // LISTSXP (pairlist), written as a chain of (attributes?, tag?, car) cells ending in NILVALUE.
        const entries: [string | null, RValue][] = [];
        let f = flags;
        for (;;) {
          if (f & (1 << 9)) item();
          let tag: string | null = null;
          if (f & (1 << 10)) {
            const t = item();
            tag = t && t.type === 'symbol' ? t.name : null;
          }
          entries.push([tag, item()]);
          f = int();
          if ((f & 0xff) !== 2) {
            if ((f & 0xff) !== NILVALUE) throw new Error(`[rdata] unsupported pairlist tail type ${f & 0xff}`);
            break;
          }
        }
        return { type: 'pairlist', entries };
      }
      case 9:
        p -= 4;
        return { type: 'character', values: [charsxp()] };
      case 10:
      case 13: {
        const n = length();
        const values: number[] = [];
        for (let i = 0; i < n; i++) values.push(int());
        return attributes({ type: 'numeric', values }, hasAttr);
      }
      case 14: {
        const n = length();
        const values: number[] = [];
        for (let i = 0; i < n; i++, p += 8) values.push(buf.readDoubleBE(p));
        return attributes({ type: 'numeric', values }, hasAttr);
      }
      case 16: {
        const n = length();
        const values: (string | null)[] = [];
        for (let i = 0; i < n; i++) values.push(charsxp());
        return attributes({ type: 'character', values }, hasAttr);
      }
      case 19:
      case 20: {
        const n = length();
        const values: RValue[] = [];
        for (let i = 0; i < n; i++) values.push(item());
        return attributes({ type: 'list', values }, hasAttr);
      }
      default:
        throw new Error(`[rdata] unsupported SEXP type ${type}${hasTag ? ' (tagged)' : ''}`);
    }
  };
  return item();
}

/** One chunk of a lazy-load .rdb: a 4-byte big-endian length, then zlib data (optionally typed 'Z'/'0'). */
function rdbChunk(rdb: Buffer, offset: number, len: number): Buffer {
  const chunk = rdb.subarray(offset, offset + len);
  const kind = String.fromCharCode(chunk[4]!);
  if (kind === 'Z') return inflateSync(chunk.subarray(5));
  if (kind === '0') return chunk.subarray(5);
  if (kind === '2' || kind === 'X')
    throw new Error(`[rdata] ${kind === '2' ? 'bzip2' : 'xz'} chunks are not supported`);
  return inflateSync(chunk.subarray(4));
}

/** Every variable of an R lazy-load data base (`dir`/Rdata.rdx + Rdata.rdb by default) by name. */
export function readLazyLoadDb(dir: string, base = 'Rdata'): Map<string, RValue> {
  const index = unserialize(gunzipSync(readFileSync(join(dir, `${base}.rdx`))));
  const rdb = readFileSync(join(dir, `${base}.rdb`));
  if (!index || index.type !== 'list') throw new Error('[rdata] the .rdx index is not a list');
  const names = index.attributes?.get('names');
  const at = (n: string) => (names?.type === 'character' ? index.values[names.values.indexOf(n)] : undefined);
  const vars = at('variables');
  if (!vars || vars.type !== 'list') throw new Error('[rdata] the .rdx index has no "variables" list');
  const varNames = vars.attributes?.get('names');
  if (!varNames || varNames.type !== 'character') throw new Error('[rdata] the variables have no names');
  const out = new Map<string, RValue>();
  vars.values.forEach((pos, i) => {
    if (!pos || pos.type !== 'numeric') return;
    out.set(varNames.values[i] ?? '', unserialize(rdbChunk(rdb, pos.values[0]!, pos.values[1]!)));
  });
  return out;
}
