// Corpus readers on tiny synthetic inputs: a SWORD zText module (OSIS stripping, chapters), an R lazy-load
// data base (XDR serialization, Austen chapters and paragraphs), text normalisation, the hash split,
// the document file format, and the block sampler's epoch permutations.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import { fnv1a, isValid, joinDocs, normalizeText, readAusten, splitDocs, splitKey } from '../../src/pretrain/corpus.js';
import { BlockSampler, evalBlocks } from '../../src/pretrain/data.js';
import { readLazyLoadDb, unserialize } from '../../src/pretrain/rdata.js';
import { readSwordModule, stripOsis } from '../../src/pretrain/sword.js';

const root = mkdtempSync(join(tmpdir(), 'vera-pretrain-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('SWORD zText', () => {
  test('stripOsis drops notes and titles, removes tags, keeps words apart', () => {
    const osis =
      '<title type="main">Genesis</title><w lemma="H1">God</w><note placement="foot">Heb. <reference>1:1</reference> Elohim</note>' +
      '<w lemma="H2">created</w> the <divineName>LORD</divineName>, <transChange type="added">it was</transChange> good.¶ &amp; more';
    assert.equal(stripOsis(osis), 'God created the LORD, it was good. & more');
    assert.equal(stripOsis('light<note>x</note>, and <lb/>dark'), 'light, and dark');
  });

  test('reads verse slots through the block index and groups them by chapter', () => {
    const dir = join(root, 'sword');
    mkdirSync(dir);
    const verses = [
      '<div osisID="Gen" sID="b1" type="book"/><title>Genesis</title>',
      '<chapter osisID="Gen.1" sID="Gen.1"/>',
      'In the <w>beginning</w>.',
      'And <w>light</w>.<chapter eID="Gen.1"/>',
      '<chapter osisID="Gen.2" sID="Gen.2"/>',
      'Thus <w>finished</w>.',
    ];
    const texts = verses.map((v) => Buffer.from(v, 'utf8'));
    const block = Buffer.concat(texts);
    const z = deflateSync(block);
    const bzs = Buffer.alloc(12);
    bzs.writeUInt32LE(0, 0);
    bzs.writeUInt32LE(z.length, 4);
    bzs.writeUInt32LE(block.length, 8);
    const bzv = Buffer.alloc(10 * (texts.length + 1)); // slot 0 is empty
    let off = 0;
    texts.forEach((t, i) => {
      bzv.writeUInt32LE(0, 10 * (i + 1));
      bzv.writeUInt32LE(off, 10 * (i + 1) + 4);
      bzv.writeUInt16LE(t.length, 10 * (i + 1) + 8);
      off += t.length;
    });
    writeFileSync(join(dir, 'ot.bzs'), bzs);
    writeFileSync(join(dir, 'ot.bzv'), bzv);
    writeFileSync(join(dir, 'ot.bzz'), z);
    for (const f of ['nt.bzs', 'nt.bzv', 'nt.bzz']) writeFileSync(join(dir, f), Buffer.alloc(0));
    assert.deepEqual(readSwordModule(dir), [
      { key: 'Gen.1', text: 'In the beginning. And light.' },
      { key: 'Gen.2', text: 'Thus finished.' },
    ]);
  });
});

/** Minimal R XDR serializer for the tests (version 3). */
class RWriter {
  parts: Buffer[] = [];
  int(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    this.parts.push(b);
    return this;
  }
  charsxp(s: string): this {
    const bytes = Buffer.from(s, 'utf8');
    this.int(0x40009).int(bytes.length);
    this.parts.push(bytes);
    return this;
  }
  /** A character vector, with a names attribute when given (the "names" symbol written once, then by reference). */
  strsxp(values: string[], names?: string[], namesSymbolSeen = false): this {
    this.int(names ? 0x210 : 0x10).int(values.length);
    values.forEach((v) => this.charsxp(v));
    if (names) this.namesAttr(names, namesSymbolSeen);
    return this;
  }
  namesAttr(names: string[], seen: boolean): this {
    this.int(0x402);
    if (seen) this.int(0x1ff);
    else this.int(1).charsxp('names');
    this.strsxp(names);
    return this.int(0xfe);
  }
  header(): this {
    this.parts.push(Buffer.from('X\n'));
    this.int(3).int(0x40300).int(0x30500).int(5);
    this.parts.push(Buffer.from('UTF-8'));
    return this;
  }
  buffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

describe('R lazy-load data base', () => {
  test('unserializes a named character vector', () => {
    const v = unserialize(new RWriter().header().strsxp(['a', 'b'], ['x', 'y']).buffer());
    assert.ok(v && v.type === 'character');
    assert.deepEqual(v.values, ['a', 'b']);
    const names = v.attributes?.get('names');
    assert.ok(names && names.type === 'character');
    assert.deepEqual(names.values, ['x', 'y']);
  });

  test('reads variables through Rdata.rdx and splits Austen-style chapters and paragraphs', () => {
    const lines = [
      'EMMA',
      '',
      'CHAPTER I',
      '',
      'Emma _Woodhouse_, handsome,',
      'clever, and rich.',
      '',
      'Second para.',
      'CHAPTER II',
      'More.',
    ];
    const payload = new RWriter().header().strsxp(lines).buffer();
    const len = Buffer.alloc(4);
    len.writeUInt32BE(payload.length);
    const chunk = Buffer.concat([len, deflateSync(payload)]);
    // Index: list(variables = list(emma = c(0L, len)), references = list(), compressed = TRUE).
    const idx = new RWriter().header().int(0x213).int(3);
    idx.int(0x213).int(1).int(0x0d).int(2).int(0).int(chunk.length).namesAttr(['emma'], false);
    idx.int(0x13).int(0);
    idx.int(0x0a).int(1).int(1);
    idx.namesAttr(['variables', 'references', 'compressed'], true);
    const dir = join(root, 'deb/usr/lib/R/site-library/janeaustenr/data');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Rdata.rdx'), gzipSync(idx.buffer()));
    writeFileSync(join(dir, 'Rdata.rdb'), chunk);
    const db = readLazyLoadDb(dir);
    assert.deepEqual([...db.keys()], ['emma']);
    assert.deepEqual(readAusten(join(root, 'deb')), [
      { source: 'austen', key: 'emma:0', text: 'EMMA' },
      { source: 'austen', key: 'emma:1', text: 'Emma Woodhouse, handsome, clever, and rich.\nSecond para.' },
      { source: 'austen', key: 'emma:2', text: 'More.' },
    ]);
  });
});

describe('corpus text', () => {
  test('normalizeText makes quotes ASCII and tidies whitespace', () => {
    assert.equal(
      normalizeText('\u201CDon\u2019t,\u201D  she said.\n\n\n Then\u00A0left. '),
      '"Don\'t," she said.\nThen left.',
    );
  });

  test('the split is a stable hash of the key, shared by both Bible translations', () => {
    assert.equal(fnv1a(''), 0x811c9dc5);
    assert.equal(fnv1a('a'), 0xe40c292c);
    const kjv = { source: 'kjv', key: 'Ps.25', text: '' };
    const web = { source: 'web', key: 'Ps.25', text: '' };
    assert.equal(splitKey(kjv), splitKey(web));
    assert.equal(isValid('bible:Ps.25', 30), true); // held out in the shipped corpus
    const held = Array.from({ length: 10000 }, (_, i) => isValid(`doc:${i}`, 30)).filter(Boolean).length;
    assert.ok(held > 200 && held < 400, `${held} of 10000 held out`);
  });

  test('documents round-trip through the <|endoftext|> line format', () => {
    const docs = ['First doc.\nTwo lines.', 'Second <|endoftext|> inline stays.'];
    assert.deepEqual(splitDocs(joinDocs(docs)), docs);
  });
});

describe('BlockSampler', () => {
  const tokens = Uint16Array.from({ length: 4 * 10 + 1 }, (_, i) => i);

  test('visits every block of an epoch once, in a seeded order', () => {
    const s = new BlockSampler(tokens, 4, 2, 7);
    assert.equal(s.blocksPerEpoch, 9);
    const starts = new Set<number>();
    for (let step = 0; step < 4; step++) {
      const b = s.batchAt(step);
      for (let r = 0; r < 2; r++) {
        const row = Array.from(b.subarray(r * 5, r * 5 + 5));
        assert.deepEqual(
          row,
          [0, 1, 2, 3, 4].map((i) => row[0]! + i),
        ); // contiguous inputs + next token
        starts.add(row[0]!);
      }
    }
    assert.equal(starts.size, 8);
    assert.deepEqual(new BlockSampler(tokens, 4, 2, 7).batchAt(3), s.batchAt(3));
    assert.notDeepEqual(new BlockSampler(tokens, 4, 2, 8).batchAt(0), s.batchAt(0));
  });

  test('evalBlocks tiles the stream with block + 1 windows', () => {
    const w = evalBlocks(tokens, 4);
    assert.equal(w.length, 10);
    assert.deepEqual(Array.from(w[1]!), [4, 5, 6, 7, 8]);
  });
});
