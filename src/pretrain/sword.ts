// Reader for SWORD zText Bible modules (Debian's sword-text-kjv / sword-text-web): the .bzs/.bzv/.bzz
// index and zlib blocks, OSIS markup stripped to plain text, verses grouped into one document per chapter.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

/** One chapter (or a book's introduction) as plain text, keyed by its OSIS id ("Gen.1", "Gen.0"). */
export interface SwordDoc {
  key: string;
  text: string;
}

/**
 * Every verse slot of one testament ("ot" or "nt") in index order, as raw OSIS strings ("" for empty
 * slots). {t}.bzs holds (offset, compressed size, uncompressed size) per zlib block, {t}.bzv holds
 * (block, offset, size) per verse slot, {t}.bzz the compressed blocks.
 */
export function readZTextSlots(moduleDir: string, testament: 'ot' | 'nt'): string[] {
  const bzs = readFileSync(join(moduleDir, `${testament}.bzs`));
  const bzv = readFileSync(join(moduleDir, `${testament}.bzv`));
  const bzz = readFileSync(join(moduleDir, `${testament}.bzz`));
  const blocks: Buffer[] = [];
  const block = (i: number): Buffer => {
    let b = blocks[i];
    if (!b) {
      if (12 * i + 12 > bzs.length) throw new Error(`[sword] ${moduleDir}/${testament}.bzs has no block ${i}`);
      const off = bzs.readUInt32LE(12 * i);
      const size = bzs.readUInt32LE(12 * i + 4);
      b = inflateSync(bzz.subarray(off, off + size));
      blocks[i] = b;
    }
    return b;
  };
  const slots: string[] = [];
  for (let p = 0; p + 10 <= bzv.length; p += 10) {
    const size = bzv.readUInt16LE(p + 8);
    if (size === 0) {
      slots.push('');
      continue;
    }
    const off = bzv.readUInt32LE(p + 4);
    slots.push(
      block(bzv.readUInt32LE(p))
        .subarray(off, off + size)
        .toString('utf8'),
    );
  }
  return slots;
}

// Elements whose content is not running text: footnotes (with their references and alternative
// readings) and headings.
const DROP_ELEMENTS = /<(note|title)\b[^>]*>[\s\S]*?<\/\1>/g;
// Structural tags separate words (a poetry line or paragraph break); inline tags (<w>, <transChange>,
// <divineName>, …) wrap parts of words and punctuation, so they vanish without a space.
const STRUCTURAL = /<\/?(div|chapter|milestone|l|lg|lb|list|item|p|speaker)\b[^>]*>/g;
const ANY_TAG = /<[^>]*>/g;

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** OSIS markup → plain text: notes and titles dropped, tags removed, whitespace collapsed. */
export function stripOsis(osis: string): string {
  return (
    osis
      // A dropped note sits between two words ("God<note>…</note><w>created"): a space keeps them apart.
      .replace(DROP_ELEMENTS, ' ')
      .replace(STRUCTURAL, ' ')
      .replace(ANY_TAG, '')
      .replace(/¶/g, ' ') // the KJV's paragraph signs
      .replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ENTITIES[e]!)
      .replace(/\s+/g, ' ')
      // The space a dropped note left before punctuation ("God , and") goes.
      .replace(/ ([,.;:!?)])/g, '$1')
      .trim()
  );
}

/**
 * A module's chapters in canonical order (OT then NT). A slot opening `<chapter osisID="Gen.1" sID=…>`
 * starts a new document; text before a book's first chapter (introductions) goes under "Book.0".
 */
export function readSwordModule(moduleDir: string): SwordDoc[] {
  const docs = new Map<string, string[]>();
  let key = 'front.0';
  for (const testament of ['ot', 'nt'] as const) {
    for (const slot of readZTextSlots(moduleDir, testament)) {
      if (slot === '') continue;
      const book = /<div\b(?=[^>]*\bsID=)[^>]*\bosisID="([^".]+)"[^>]*\btype="book"/.exec(slot);
      if (book) key = `${book[1]}.0`;
      const chapter = /<chapter\b[^>]*\bosisID="([^"]+)"[^>]*\bsID=/.exec(slot);
      if (chapter) key = chapter[1]!;
      const text = stripOsis(slot);
      if (text === '') continue;
      let parts = docs.get(key);
      if (!parts) docs.set(key, (parts = []));
      parts.push(text);
    }
  }
  return [...docs].map(([k, parts]) => ({ key: k, text: parts.join(' ') }));
}
