// BLEU, ROUGE-L, NIST and CIDEr against values published with the reference implementations
// (sacreBLEU's test/test_bleu.py; rouge-score's rouge_scorer_test.py, ROUGE-1.5.5 ground truth) and
// small cases derived by hand, step by step, in the comments. No fixture needed (see parity.test.ts).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  bleu,
  bleuMteval,
  cider,
  ciderDetailed,
  mtevalTokenize,
  nist,
  porterStem,
  rougeL,
  rougeLCoco,
  rougeLCocoSentence,
  rougeLSentence,
  rougeTokenize,
  tokenize13a,
  tokenizeIntl,
  toReferenceStreams,
} from '../../src/metrics/index.js';
import { pySplit } from '../../src/metrics/util.js';

const near = (got: number, want: number, tol = 1e-12) =>
  assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `got ${got}, want ${want}`);

describe('bleu: values published in sacreBLEU test/test_bleu.py', () => {
  // sacreBLEU's README example: two reference streams for three hypotheses
  const refs = [
    ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
    ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
  ];
  const hyps = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];
  // test_corpus_bleu_cases (their tolerance is 1e-8 on values printed to 6-8 decimals)
  test('default settings: 48.530827', () => near(bleu(hyps, refs).score, 48.530827, 1e-8));
  test("tokenize='13a': 48.530827", () => near(bleu(hyps, refs, { tokenize: '13a' }).score, 48.530827, 1e-8));
  test("tokenize='none': 49.1919566", () => near(bleu(hyps, refs, { tokenize: 'none' }).score, 49.1919566, 1e-8));
  test("tokenize='intl': 43.91623493", () => near(bleu(hyps, refs, { tokenize: 'intl' }).score, 43.91623493, 1e-8));
  test('empty hypotheses are kept and score 0', () => assert.equal(bleu(['', '', ''], refs).score, 0));
  // test_case_statistics (raw_corpus_bleu: tokenize='none')
  test('statistics of "am I am a character sequence" vs "I am a symbol string sequence a a"', () => {
    const s = bleu(['am I am a character sequence'], [['I am a symbol string sequence a a']], { tokenize: 'none' });
    assert.deepEqual(s.counts, [4, 2, 1, 0]);
    assert.deepEqual(s.totals, [6, 5, 4, 3]);
  });
});

describe('bleu: hand-derived', () => {
  test('one sentence with exp smoothing', () => {
    // hyp "the cat sat on the mat", ref "the cat is on the mat" (6 tokens each, BP = 1)
    // 1-grams: the×2 cat on mat match -> 5/6; 2-grams: "the cat" "on the" "the mat" -> 3/5
    // 3-grams: "on the mat" -> 1/4; 4-grams: none of 3 -> 'exp' smoothing: 100 / (2·3)
    const s = bleu(['the cat sat on the mat'], [['the cat is on the mat']]);
    const p = [(100 * 5) / 6, (100 * 3) / 5, (100 * 1) / 4, 100 / (2 * 3)];
    s.precisions.forEach((v, i) => near(v, p[i]));
    assert.equal(s.bp, 1);
    near(s.score, Math.exp(p.reduce((a, v) => a + Math.log(v), 0) / 4));
  });
  test('brevity penalty uses the closest reference length, the shorter on a tie', () => {
    // hyp 4 tokens; refs of 3 and 5 tokens are equally close -> 3 -> sys ≥ ref -> BP = 1
    assert.equal(bleu(['a b c d'], [['a b c'], ['a b c d e']]).refLen, 3);
    // hyp 2 tokens, ref 4 tokens -> BP = exp(1 − 4/2)
    near(bleu(['a b'], [['a b c d']]).bp, Math.exp(1 - 4 / 2));
  });
  test('no match at all: score 0 and zero precisions (sacreBLEU #141)', () => {
    const s = bleu(['x y z w'], [['a b c d']]);
    assert.equal(s.score, 0);
    assert.deepEqual(s.precisions, [0, 0, 0, 0]);
  });
  test('null is a missing reference, "" an empty one (sacreBLEU 2.6 keeps "" refs)', () => {
    // sentence 1 ("a b c" vs refs "a b c", "x") takes length 3. Sentence 2 (empty hypothesis) has
    // the single reference "d e f" in the null case -> 3; in the '' case it also has an empty one,
    // whose length 0 is the closest -> 0
    assert.equal(
      bleu(
        ['a b c', ''],
        [
          ['a b c', 'd e f'],
          ['x', null],
        ],
      ).refLen,
      3 + 3,
    );
    assert.equal(
      bleu(
        ['a b c', ''],
        [
          ['a b c', 'd e f'],
          ['x', ''],
        ],
      ).refLen,
      3 + 0,
    );
    assert.throws(() => bleu(['a'], [[null]]), /no reference/);
    assert.throws(() => bleu(['a', 'b'], [['a']]), /stream 0/);
  });
  test('13a tokenizer (mteval-v13a rules)', () => {
    assert.equal(tokenize13a('Hello, world!'), 'Hello , world !');
    assert.equal(tokenize13a("It's $5.00 (approx.)"), "It's $ 5.00 ( approx . )");
    assert.equal(tokenize13a('1,000 3-4 e-mail'), '1,000 3 - 4 e-mail');
    assert.equal(tokenize13a('&quot;x&quot; &amp; a&lt;b'), '" x " & a < b');
    assert.equal(tokenize13a('split-\nword <skipped>'), 'splitword');
    assert.equal(tokenizeIntl('Bonjour, «monde» 3,5 €!'), 'Bonjour , « monde » 3,5 € !');
  });
  test('whitespace is split as Python str.split() does (U+001F and U+0085 are whitespace, U+FEFF is not)', () => {
    assert.deepEqual(pySplit('a\u001fb\u0085c\u00a0d\u3000e\ufefff'), ['a', 'b', 'c', 'd', 'e\ufefff']);
  });
});

describe('rougeL: values published in rouge-score rouge_scorer_test.py', () => {
  test('testRougeLConsecutive / NonConsecutive: P 1, R 2/3, F 4/5', () => {
    for (const pred of ['testing one', 'testing two']) {
      const s = rougeLSentence(pred, ['testing one two']);
      near(s.precision, 1);
      near(s.recall, 2 / 3);
      near(s.fmeasure, 4 / 5);
    }
  });
  test('testRougeEmpty: an empty prediction scores 0', () => {
    assert.deepEqual(rougeLSentence('', ['testing one two']), { precision: 0, recall: 0, fmeasure: 0 });
  });
  // rouge/testdata/{target,prediction}.txt lines 0 and 1 (readlines(), so with '\n'), scored with
  // ROUGE-1.5.5 by the rouge-score authors; published to 5 places
  const targets = [
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
  ];
  const predictions = [
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
  ];
  const round5 = (v: number) => Math.round(v * 1e5) / 1e5;
  test('testRougeLAgainstRouge155 line 0: R 0.40741, P 0.68750, F 0.51163', () => {
    const s = rougeLSentence(predictions[0], [targets[0]]);
    assert.deepEqual([round5(s.recall), round5(s.precision), round5(s.fmeasure)], [0.40741, 0.6875, 0.51163]);
  });
  test('testRougeLAgainstRouge155 line 1: R 0.40476, P 0.65385, F 0.50000', () => {
    const s = rougeLSentence(predictions[1], [targets[1]]);
    assert.deepEqual([round5(s.recall), round5(s.precision), round5(s.fmeasure)], [0.40476, 0.65385, 0.5]);
  });
  test('tokenizer + Porter stemmer reproduce testRouge1AgainstRouge155WithStemming (line 1: R 0.42857, P 0.69231)', () => {
    // ROUGE-1 = clipped unigram overlap of the (stemmed) rouge-score tokens
    const t = rougeTokenize(targets[1], true);
    const p = rougeTokenize(predictions[1], true);
    const count = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
    const ct = count(t);
    let overlap = 0;
    for (const [w, c] of count(p)) overlap += Math.min(c, ct.get(w) ?? 0);
    assert.deepEqual([round5(overlap / t.length), round5(overlap / p.length)], [0.42857, 0.69231]);
    // and without stemming the published line-1 ROUGE-1 is R 0.40476, P 0.65385
    const t0 = rougeTokenize(targets[1]);
    const p0 = rougeTokenize(predictions[1]);
    const ct0 = count(t0);
    let o0 = 0;
    for (const [w, c] of count(p0)) o0 += Math.min(c, ct0.get(w) ?? 0);
    assert.deepEqual([round5(o0 / t0.length), round5(o0 / p0.length)], [0.40476, 0.65385]);
  });
});

describe('rougeL: hand-derived', () => {
  test('tokenizer: lowercase, non-alphanumerics (non-ASCII letters too) become separators', () => {
    assert.deepEqual(rougeTokenize("It's Café-au-lait, 3.5!"), ['it', 's', 'caf', 'au', 'lait', '3', '5']);
    assert.deepEqual(rougeTokenize('running quickly', true), ['run', 'quickli']);
  });
  test('best reference by F-measure per sentence, then the mean over sentences', () => {
    // sentence 1: "a b c" vs "a b c d" (LCS 3: P 1, R 3/4, F 6/7) and vs "x" (F 0) -> the first
    // sentence 2: "p q" vs "q p" (LCS 1: P 1/2, R 1/2, F 1/2)
    const s = rougeL(
      ['a b c', 'p q'],
      [
        ['a b c d', 'q p'],
        ['x', null],
      ],
    );
    near(s.precision, (1 + 1 / 2) / 2);
    near(s.recall, (3 / 4 + 1 / 2) / 2);
    near(s.fmeasure, (6 / 7 + 1 / 2) / 2);
  });
  test('Porter stemmer (NLTK extensions)', () => {
    const cases: [string, string][] = [
      ['caresses', 'caress'],
      ['ponies', 'poni'],
      ['ties', 'tie'], // NLTK: 4-letter "ies" -> "ie"
      ['agreed', 'agre'],
      ['hopping', 'hop'],
      ['relational', 'relat'],
      ['generalizations', 'gener'],
      ['happy', 'happi'],
      ['enjoy', 'enjoy'], // NLTK: y -> i only after a consonant
      ['dying', 'die'], // NLTK's irregular forms
      ['sky', 'sky'],
      ['controll', 'control'],
    ];
    for (const [w, s] of cases) assert.equal(porterStem(w), s, w);
  });
});

describe('rougeLCoco (pycocoevalcap ROUGE_L, β = 1.2): hand-derived', () => {
  test('P and R are maximised separately over the references', () => {
    // candidate "a b c d"; ref 1 "a c d e f": LCS 3 -> P 3/4, R 3/5; ref 2 "b": LCS 1 -> P 1/4, R 1
    // P_max = 3/4, R_max = 1 -> F = (1 + 1.44)·(3/4)·1 / (1 + 1.44·3/4)
    const b2 = 1.2 ** 2;
    near(rougeLCocoSentence('a b c d', ['a c d e f', 'b']), ((1 + b2) * 0.75 * 1) / (1 + b2 * 0.75));
    near(rougeLCocoSentence('a b c d', ['a c d e f']), ((1 + b2) * 0.75 * 0.6) / (0.6 + b2 * 0.75));
  });
  test('the corpus score is the mean; no overlap gives 0', () => {
    near(rougeLCoco(['a b', 'x'], [['a b', 'y']]), (1 + 0) / 2);
  });
});

describe('nist (mteval-v13a): hand-derived', () => {
  test('information weights and the length penalty, step by step', () => {
    // refs: stream 1 "a b c", stream 2 missing (an empty segment, as e2e-metrics pads)
    // reference counts: a b c = 1 each, "a b" "b c" "a b c" = 1 each, 3 words in all
    // info(a) = −log2(1/3) = log2 3 (same for b, c); info("a b") = −log2(count("a b")/count("a")) = 0
    // hyp "a b": matched 1-gram info 2·log2 3 over 2 1-grams, matched 2-gram info 0 over 1 2-gram
    // => Σ_n = log2 3. Length: 2 hyp words / (3 ref words / 2 streams) = 4/3 ≥ 1 -> penalty 1
    near(nist(['a b'], [['a b c'], [null]]), Math.log2(3));
    // with a single stream the mean reference length is 3: ratio 2/3 = 1/1.5, where mteval's penalty
    // is exp(−β ln²(ratio)) with β = −ln 0.5 / ln² 1.5, i.e. exactly 0.5
    near(nist(['a b'], [['a b c']]), 0.5 * Math.log2(3));
  });
  test('n selects the cumulative order; orders without matches add 0', () => {
    near(nist(['a b'], [['a b c'], [null]], { n: 1 }), Math.log2(3));
    near(nist(['a b'], [['a b c'], [null]], { n: 9 }), Math.log2(3));
  });
  test('mteval\'s Perl quirk: a context that is the token "0" is false, so the unigram formula is used', () => {
    // refs "0 x": count(0) = count(x) = count("0 x") = 1, 2 words. info(0) = info(x) = log2 2 = 1.
    // info("0 x") should be −log2(1/1) = 0, but `$mgram ? … : count/tot_wrds` sees "0" as false -> 1.
    // hyp "0 x": 1-grams (1 + 1)/2 = 1, 2-grams 1/1 = 1 -> 2 (with "1 x" the 2-gram adds 0 -> 1)
    near(nist(['0 x'], [['0 x']]), 2);
    near(nist(['1 x'], [['1 x']]), 1);
  });
  test('tokenization: ASCII-only lowercasing (unless preserveCase), 13a punctuation rules', () => {
    assert.deepEqual(mtevalTokenize('Hello, Über World!'), ['hello', ',', 'Über', 'world', '!']);
    assert.deepEqual(mtevalTokenize('Hello, Über World!', true), ['Hello', ',', 'Über', 'World', '!']);
    near(nist(['The Cat'], [['the cat']]), nist(['the cat'], [['the cat']]));
  });
  test("bleuMteval: mteval's smoothing -- unmatched orders count 1/2^k, orders without n-grams count 1", () => {
    // hyp "a b" vs ref "c d": 1-grams 0/2 -> 1/(2·2); 2-grams 0/1 -> 1/(4·1); 3-, 4-grams: none -> log 1
    // exp((ln ¼ + ln ¼ + 0 + 0) / 4) = ½; lengths equal -> no brevity penalty. sacreBLEU gives 0 here.
    near(bleuMteval(['a b'], [['c d']]), 0.5);
    assert.equal(bleu(['a b'], [['c d']]).score, 0);
    // otherwise it is sacreBLEU's corpus BLEU on the 0-1 scale, case-insensitive
    near(
      bleuMteval(['The cat sat on the mat'], [['the cat is on the mat']]),
      bleu(['the cat sat on the mat'], [['the cat is on the mat']]).score / 100,
    );
  });
  test('a sentence without reference words throws, as mteval dies on it', () => {
    assert.throws(() => nist(['a', 'b'], [['a', null]]), /no reference words/);
  });
});

describe('cider (pycocoevalcap CIDEr): hand-derived', () => {
  test('two sentences, step by step', () => {
    // 2 sentences -> ref_len = ln 2. Document frequencies: a, b, "a b" (sentence 1) and c, e, "c e"
    // (sentence 2) occur in one reference set each -> idf ln 2 − ln 1 = ln 2; unseen n-grams get
    // log(max(1, 0)) = 0 -> also ln 2. Every weight is therefore tf·ln 2.
    // Sentence 1: hyp = ref = "a b": 1-gram and 2-gram cosines 1, 3- and 4-grams 0 (zero norms are
    //   guarded) -> mean(1, 1, 0, 0) = 0.5 -> ×10 = 5
    // Sentence 2: hyp "c d" vs ref "c e": 1-grams: c matches (ln²2), d has no reference weight ->
    //   ln²2 / (√2 ln 2 · √2 ln 2) = 1/2; 2-grams 0 -> mean(1/2, 0, 0, 0) = 1/8 -> ×10 = 1.25
    const r = ciderDetailed(['a b', 'c d'], [['a b', 'c e']]);
    near(r.perSentence[0], 5);
    near(r.perSentence[1], 1.25);
    near(r.score, (5 + 1.25) / 2);
  });
  test('the Gaussian length penalty counts bigrams (pycocoevalcap\'s "if n == 1" on the 0-based order)', () => {
    // Sentence 1: hyp "a b c" (2 bigrams) vs ref "a b" (1 bigram): δ = 1 -> penalty e^(−1/72)
    //   1-grams: (ln²2 + ln²2 + 0) / (√3 ln 2 · √2 ln 2) = 2/√6; 2-grams: "a b" -> 1/√2; 3-grams: 0
    // Sentence 2: hyp = ref = "x y" -> 5 (as above)
    const r = ciderDetailed(['a b c', 'x y'], [['a b', 'x y']]);
    near(r.perSentence[0], ((2 / Math.sqrt(6) + 1 / Math.SQRT2) / 4) * Math.exp(-1 / 72) * 10);
    near(r.perSentence[1], 5);
  });
  test('a single sentence scores 0: every idf is log(1) − log(1)', () => {
    assert.equal(cider(['a b c'], [['a b c']]), 0);
  });
  test("references are averaged: an extra empty reference halves a sentence's score, a null one does not", () => {
    const base = ciderDetailed(['a b', 'c d'], [['a b', 'c e']]).perSentence[0];
    near(
      ciderDetailed(
        ['a b', 'c d'],
        [
          ['a b', 'c e'],
          ['', null],
        ],
      ).perSentence[0],
      base / 2,
    );
    near(
      ciderDetailed(
        ['a b', 'c d'],
        [
          ['a b', 'c e'],
          [null, null],
        ],
      ).perSentence[0],
      base,
    );
  });
  test('toReferenceStreams pads per-sentence lists with null', () => {
    assert.deepEqual(toReferenceStreams([['a', 'b'], ['c']]), [
      ['a', 'c'],
      ['b', null],
    ]);
  });
});
