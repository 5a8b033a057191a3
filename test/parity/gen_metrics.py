#!/usr/bin/env python3
"""Reference values for src/metrics, computed by the reference implementations themselves.

Writes test/parity/fixtures/metrics/metrics.json, read by test/metrics/parity.test.ts. The file has
one section per (metric, implementation); each section records which implementation and version
produced it, and holds cases (inputs + expected outputs, or the error the reference raised).

Sections and the implementation each needs (a section whose implementation cannot be imported here
is NOT regenerated: it is kept from the existing metrics.json, and the script says so):

  classification       scikit-learn  (accuracy_score, f1_score(zero_division=0), matthews_corrcoef)
  correlation          scipy         (scipy.stats.pearsonr, scipy.stats.spearmanr)
  perplexity           python math.exp
  bleu                 sacrebleu     (sacrebleu.corpus_bleu; 13a / none / intl, lowercase)
  rougeL               rouge-score   (RougeScorer(['rougeL']).score_multi, mean over sentences);
                                     the pip package `rouge_score`, or Google's source tree importable
                                     as package `rouge` (--ref-src); use_stemmer cases need nltk
  rougeL_torchmetrics  torchmetrics  (torchmetrics.functional.text.rouge.rouge_score, accumulate='best')
  porter               nltk          (nltk.stem.porter.PorterStemmer(), default NLTK_EXTENSIONS mode)
  rougeLCoco           pycocoevalcap (pycocoevalcap.rouge.rouge.Rouge, the E2E challenge's ROUGE_L)
  cider                pycocoevalcap (pycocoevalcap.cider.cider.Cider, the E2E challenge's CIDEr)
  mteval               perl + mteval-v13a(-sig).pl given with --mteval (the E2E challenge's NIST and
                       BLEU), driven the way e2e-metrics' measure_scores.py drives it (SGML files, refs
                       padded with empty segments); the script needs Perl's XML::Twig

Multi-reference layout everywhere: refs[k][i] is the k-th reference of sentence i (sacreBLEU's
"reference streams"); null (None) means "sentence i has no k-th reference": sacreBLEU gets the None,
mteval an empty segment (as e2e-metrics pads its files), the other scorers per-sentence lists without
it. An empty string is an empty reference, passed on as such.

Run:  python3 test/parity/gen_metrics.py [--ref-src DIR] [--mteval PATH/TO/mteval-v13a-sig.pl]
  --ref-src DIR   prepended to sys.path, for reference packages that are not installed
                  (e.g. a checkout holding pycocoevalcap/ or Google's rouge/); --ref-src-note TEXT
                  says where that source came from, and is recorded in the fixture
  --mteval PATH   the mteval script (e2e-metrics/mteval/mteval-v13a-sig.pl); as published it prints
                  4 decimals (the section then gets tolerance 6e-5). A copy with one extra line in
                  printout_report printing `NIST full cum:` (n = 1..9, %.17g) and `BLEU full cum:` gives
                  full precision; --mteval-note TEXT records which was used
  --only a,b      regenerate only these sections
Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".

How the committed metrics.json was produced:
  * on the GPU machine (Python 3.12, scikit-learn 1.9.1, scipy 1.18.1, numpy 2.5.2, sacrebleu 2.6.0,
    torchmetrics 1.9.0; no nltk, rouge-score or pycocoevalcap there):
        python3 test/parity/gen_metrics.py
    -> classification, correlation, perplexity, bleu, rougeL_torchmetrics
  * on a Debian 12 machine (/usr/bin/python3 3.11 with python3-numpy/-nltk/-absl/-future and
    libxml-twig-perl), with verbatim copies of the upstream sources (tylin/coco-caption@bfd1596
    pycocoevalcap/{cider,rouge}; google-research rouge/ with score_multi as in rouge-score 0.1.2;
    e2e-metrics mteval/mteval-v13a-sig.pl plus the full-precision print line) in REFSRC:
        python3 test/parity/gen_metrics.py --ref-src REFSRC --only rougeL,porter,rougeLCoco,cider \
            --ref-src-note ... ; python3 test/parity/gen_metrics.py --only mteval \
            --mteval REFSRC/mteval-v13a-sig.pl --mteval-note ...
    -> rougeL, porter, rougeLCoco, cider, mteval
"""
import argparse
import importlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "metrics", "metrics.json")

ap = argparse.ArgumentParser()
ap.add_argument("--ref-src", default=None)
ap.add_argument("--ref-src-note", default="source tree, not pip-installed", help="provenance of --ref-src, recorded in the fixture")
ap.add_argument("--mteval", default=None)
ap.add_argument("--mteval-note", default="", help="provenance of --mteval, recorded in the fixture")
ap.add_argument("--only", default=None)
ap.add_argument("--out", default=OUT)
args = ap.parse_args()
if args.ref_src:
    sys.path.insert(0, os.path.abspath(args.ref_src))
ONLY = set(args.only.split(",")) if args.only else None
warnings.simplefilter("ignore")


def fnum(v):
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def try_import(name):
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return None


def version_of(mod, dist=None):
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib.metadata import version

        return version(dist or mod.__name__)
    except Exception:  # noqa: BLE001
        return "unknown"


def run_case(fn):
    """Runs fn(); returns {"expected": ...} or {"error": "<ExceptionType>: message"}."""
    try:
        return {"expected": fn()}
    except Exception as e:  # noqa: BLE001 - the reference raising is itself a result
        return {"error": f"{type(e).__name__}: {e}"}


# ---- inputs (pure-Python RNG: identical on every machine) ------------------------------------------
R = random.Random(20240611)


def rand_labels(n, k):
    return [R.randrange(k) for _ in range(n)]


def noisy_copy(gold, k, p):
    return [g if R.random() > p else R.randrange(k) for g in gold]


CLASS_CASES = []  # (name, pred, gold)
for i in range(6):
    n = R.choice([5, 17, 64, 200])
    gold = rand_labels(n, 2)
    CLASS_CASES.append((f"binary-random-{i}", noisy_copy(gold, 2, 0.35), gold))
for i in range(6):
    n = R.choice([9, 33, 128])
    k = R.choice([3, 4, 7])
    gold = rand_labels(n, k)
    CLASS_CASES.append((f"multiclass-random-{i}-k{k}", noisy_copy(gold, k, 0.4), gold))
CLASS_CASES += [
    ("all-correct-binary", [0, 1, 1, 0, 1], [0, 1, 1, 0, 1]),
    ("all-wrong-binary", [1, 0, 0, 1], [0, 1, 1, 0]),
    ("all-zero-both", [0, 0, 0, 0], [0, 0, 0, 0]),
    ("all-one-both", [1, 1, 1], [1, 1, 1]),
    ("gold-one-class-pred-two", [0, 1, 0, 1, 1], [1, 1, 1, 1, 1]),
    ("pred-one-class-gold-two", [0, 0, 0, 0], [0, 1, 1, 0]),
    ("no-positive-predicted", [0, 0, 0], [1, 0, 1]),
    ("labels-0-2-binary", [0, 2, 2, 0], [0, 2, 0, 0]),
    ("labels-3-5", [3, 5, 5, 3, 5], [3, 5, 3, 3, 5]),
    ("multiclass-class-only-in-pred", [0, 1, 2, 3], [0, 1, 1, 0]),
    ("multiclass-constant-pred", [2, 2, 2, 2, 2], [0, 1, 2, 0, 1]),
    ("single-sample", [1], [1]),
    ("empty", [], []),
    ("negative-labels", [-1, 1, -1, 1], [-1, -1, 1, 1]),
]
F1_VARIANTS = [
    ("binary", None),
    ("binary", 0),
    ("binary", 3),
    ("macro", None),
    ("micro", None),
]


def gen_classification():
    import sklearn
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    cases = []
    for name, pred, gold in CLASS_CASES:
        c = {"name": name, "pred": pred, "gold": gold}
        c["accuracy"] = run_case(lambda: fnum(accuracy_score(gold, pred)))
        c["mcc"] = run_case(lambda: fnum(matthews_corrcoef(gold, pred)))
        f1s = []
        for avg, pos in F1_VARIANTS:
            kw = {"average": avg, "zero_division": 0}
            if pos is not None:
                kw["pos_label"] = pos
            r = run_case(lambda: fnum(f1_score(gold, pred, **kw)))
            r["average"] = avg
            if pos is not None:
                r["positive"] = pos
            f1s.append(r)
        c["f1"] = f1s
        cases.append(c)
    return {"implementation": f"scikit-learn {sklearn.__version__}", "cases": cases}


def gen_correlation():
    import numpy as np
    import scipy
    from scipy import stats

    R = random.Random(7)  # own stream: inputs do not depend on which other sections ran
    vecs = []
    for i in range(5):
        n = R.choice([3, 10, 50, 300])
        x = [R.gauss(0, 1) for _ in range(n)]
        y = [a * R.uniform(-2, 2) + R.gauss(0, 1) for a in x]
        vecs.append((f"random-{i}", x, y))
    for i in range(3):
        n = R.choice([8, 25, 60])
        x = [R.randrange(4) for _ in range(n)]
        y = [R.randrange(3) + 0.5 * a for a in x]
        vecs.append((f"ties-{i}", x, y))
    big = [1e8 + R.random() for _ in range(20)]
    vecs += [
        ("large-offset", big, [b * 3 - 2e8 + R.random() for b in big]),
        ("perfect", [1, 2, 3, 4, 5], [2, 4, 6, 8, 10]),
        ("perfect-negative", [1, 2, 3, 4], [9, 7, 5, 3]),
        ("monotone-nonlinear", [1, 2, 3, 4, 5, 6], [1, 4, 9, 16, 25, 1000]),
        ("constant-x", [3, 3, 3, 3], [1, 2, 3, 4]),
        ("constant-y", [1, 2, 3], [0.5, 0.5, 0.5]),
        ("n2", [1.0, 2.0], [5.0, 3.0]),
        ("n2-equal-x", [1.0, 1.0], [5.0, 3.0]),
        ("n1", [1.0], [2.0]),
        ("all-ties-but-one", [1, 1, 1, 2], [5, 6, 7, 8]),
        ("integers-with-repeats", [10, 20, 20, 30, 40, 40, 40], [3, 1, 2, 5, 4, 4, 9]),
        ("tiny-values", [1e-300 * a for a in [1, 2, 3, 5]], [1e-300 * a for a in [2, 1, 4, 3]]),
        ("nan-input", [1.0, float("nan"), 3.0, 4.0], [1.0, 2.0, 3.0, 5.0]),
        ("mismatched-length", [1.0, 2.0, 3.0], [1.0, 2.0]),
    ]
    cases = []
    for name, x, y in vecs:
        c = {"name": name, "x": [fnum(v) for v in x], "y": [fnum(v) for v in y]}
        c["pearson"] = run_case(lambda: fnum(stats.pearsonr(np.asarray(x, float), np.asarray(y, float))[0]))
        if len(x) == len(y):  # spearmanr's column_stack error on mismatch is not a contract worth pinning
            c["spearman"] = run_case(lambda: fnum(stats.spearmanr(np.asarray(x, float), np.asarray(y, float))[0]))
        cases.append(c)
    return {"implementation": f"scipy {scipy.__version__} (numpy {np.__version__})", "cases": cases}


def gen_perplexity():
    vals = [0.0, 1e-9, 0.5, 1.0, 2.302585092994046, 3.7, 10.0, 50.0, 700.0, 710.0]
    cases = [{"name": f"nll={v}", "meanNll": v, "expected": fnum(math.exp(v)) if v < 709.8 else "Infinity"} for v in vals]
    return {"implementation": f"python {sys.version.split()[0]} math.exp", "cases": cases}


# ---- text corpora -----------------------------------------------------------------------------------
VOCAB = (
    "the a an cat dog sat on mat quick brown fox jumps over lazy running runs ran happily happiness "
    "generalization relational conditional hopeful Eagle Burger King coffee shop near riverside rated "
    "out of 5 0 stars family friendly Italian food price range high low city centre customer rating "
    "it is has serves called located "
).split() + [
    "£20-25", "3.5", "1,000", "U.S.", "don't", "it's", "e-mail", "(cheap)", '"quoted"', "&quot;ent&quot;",
    "&amp;", "x<y", "a>b", "café", "naïve", "Über", "ΟΔΟΣ", "中文", "😀", ".", ",", "!", "?", ";", ":",
    "-", "--", "...", "'s", "3-4", "10.", "5,", "{x}", "[y]", "#1", "$9", "ŉ", "İstanbul", "ǅ",
]
SEPS = [" "] * 12 + ["  ", "\t", " \u00a0", "\u3000"]


def rand_sentence(lo=0, hi=14):
    n = R.randint(lo, hi)
    out = ""
    for i in range(n):
        out += R.choice(VOCAB) + (R.choice(SEPS) if i < n - 1 else "")
    return out


def perturb(s):
    toks = s.split(" ")
    out = []
    for t in toks:
        r = R.random()
        if r < 0.15:
            continue
        if r < 0.3:
            out.append(R.choice(VOCAB))
        elif r < 0.38:
            out += [t, R.choice(VOCAB)]
        else:
            out.append(t)
    if R.random() < 0.2:
        out = [w.upper() if R.random() < 0.5 else w for w in out]
    return " ".join(out)


def to_streams(per_sentence):
    """Per-sentence reference lists -> reference streams refs[k][i], padded with None (JSON null)."""
    k = max(max(len(r) for r in per_sentence), 1)
    return [[r[j] if j < len(r) else None for r in per_sentence] for j in range(k)]


TEXT_CASES = []  # (name, hyps, per-sentence refs)
for i in range(10):
    n = R.choice([1, 3, 8, 20])
    hyps, refs = [], []
    for _ in range(n):
        base = rand_sentence(0 if R.random() < 0.1 else 1)
        hyp = perturb(base) if R.random() < 0.8 else rand_sentence()
        nref = R.randint(1, 4)
        refs.append([base] + [perturb(base) or "x" for _ in range(nref - 1)])
        hyps.append(hyp)
    TEXT_CASES.append((f"random-{i}", hyps, refs))
E2E_REFS = [
    ["The Eagle is a coffee shop near Burger King in the riverside area.", "Near Burger King, The Eagle coffee shop serves Italian food.", "The Eagle, a coffee shop, is located by the riverside near Burger King."],
    ["Blue Spice is a family friendly pub with a price range of £20-25.", "Blue Spice pub is family friendly and costs £20-25."],
    ["The Mill has a customer rating of 5 out of 5.", "Rated 5 out of 5, The Mill is a high priced restaurant in the city centre.", "The Mill restaurant, rated 5 out of 5, is in the city centre.", "5 out of 5 stars: The Mill."],
    ["Fitzbillies is a cheap coffee shop.", "Fitzbillies serves cheap food; it is not family-friendly."],
]
E2E_HYPS = [
    "The Eagle is a coffee shop near Burger King in the riverside area.",
    "Blue Spice is a family friendly pub in the price range of £20-25.",
    "The Mill is a restaurant with a customer rating of 5 out of 5 in the city centre.",
    "Fitzbillies is a cheap coffee shop that is not family-friendly.",
]
TEXT_CASES += [
    ("e2e-like", E2E_HYPS, E2E_REFS),
    ("identical-single", ["the cat sat on the mat"], [["the cat sat on the mat"]]),
    ("identical-corpus", ["the cat sat on the mat", "a dog ran over the hill"], [["the cat sat on the mat"], ["a dog ran over the hill"]]),
    ("no-overlap", ["alpha beta gamma delta", "one two"], [["w x y z"], ["three four five"]]),
    ("empty-hypothesis", ["", "the cat is on the mat"], [["the cat sat on the mat"], ["the cat is on the mat", "a cat on a mat"]]),
    ("all-empty-hypotheses", ["", ""], [["a b c"], ["d e"]]),
    ("short-hypotheses", ["cat", "the dog", "a b c"], [["the cat"], ["the dog barks"], ["a b c d e"]]),
    ("punctuation", ["Hello, world! It's 3.5 (or 3,5) -- e-mail me: x@y.z; \"ok\"?", "1,000.50 - 20-30 $9 &quot;q&quot; &amp; &lt;tag&gt;"], [["Hello world! It is 3.5 or 3,5 - email me: x@y.z ok?"], ["1,000.50 - 20 - 30 $9 \"q\" & <tag>"]]),
    ("unicode", ["Café naïve Über ΟΔΟΣ ΣΟΦΟΣ 中文 😀 İstanbul ǅ ŉ", "Ünïcödé wörds — “curly” ‘quotes’ …"], [["café naive über οδος σοφος 中文 😀 istanbul ǆ"], ["Unicode words - \"curly\" 'quotes' ..."]]),
    ("whitespace", ["  the\tcat \u00a0sat\u3000on  the mat  ", "a\u2003b\x1fc\x85d"], [["the cat sat on the mat"], ["a b c d"]]),
    ("case", ["The CAT Sat On The Mat", "THE DOG"], [["the cat sat on the mat"], ["The dog"]]),
    ("stemming", ["the runners were running happily over generalizations", "relational conditional hopefulness"], [["a runner runs happy over the generalization"], ["relate condition hopeful"]]),
    ("variable-refs", ["a b c d e", "f g h", "i j k l"], [["a b c d e f"], ["f g", "h g f", "f g h i", "x"], ["i j", "k l"]]),
    ("zero-token-quirk", ["0 stars for the 0 place", "rated 0 out of 5"], [["0 stars for this 0 place", "given 0 stars"], ["rated 0 out of 5 stars", "0 out of 5"]]),
    ("repeated-ngrams", ["the the the the the the the", "a a a b b b"], [["the cat is on the mat"], ["a b a b", "b b b a"]]),
    ("markup-and-newlines", ["a <skipped> b &lt;c&gt;", "line one-\nline two", "x\ny  z-\n"], [["a b <c>"], ["line oneline two"], ["x y z"]]),
    # sacreBLEU's README example (test/test_bleu.py publishes 48.530827 for it), in per-sentence form
    ("sacrebleu-readme", ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."], [["The dog bit the man.", "The dog had bit the man."], ["It was not unexpected.", "No one was surprised."], ["The man bit him first.", "The man had bitten the dog."]]),
    ("missing-reference", ["a b c", "d e f"], [["a b c"], []]),
    ("empty-reference", ["a b c", "d e f", "g h"], [["a b c"], [""], ["", "g h i"]]),
    ("long", [" ".join(R.choice(VOCAB[:60]) for _ in range(60)) for _ in range(3)], [[" ".join(R.choice(VOCAB[:60]) for _ in range(55))] for _ in range(3)]),
]


def text_case_base(name, hyps, per_sentence):
    return {"name": name, "hyps": hyps, "refs": to_streams(per_sentence)}


def clean_refs(stream_refs, i):
    """The references of sentence i: None entries (missing references) dropped, '' kept."""
    return [s[i] for s in stream_refs if s[i] is not None]


def gen_bleu():
    import sacrebleu

    variants = [
        {},
        {"lowercase": True},
        {"tokenize": "none"},
        {"tokenize": "intl"},
        {"tokenize": "intl", "lowercase": True},
    ]
    cases = []
    for name, hyps, per in TEXT_CASES:
        base = text_case_base(name, hyps, per)
        for v in variants:
            c = dict(base)
            c["name"] = name + "".join(f" {k}={val}" for k, val in v.items())
            c["opts"] = v

            def go():
                s = sacrebleu.corpus_bleu(
                    hyps,
                    base["refs"],
                    tokenize=v.get("tokenize", "13a"),
                    lowercase=v.get("lowercase", False),
                )
                return {
                    "score": fnum(s.score),
                    "precisions": [fnum(p) for p in s.precisions],
                    "bp": fnum(s.bp),
                    "sysLen": int(s.sys_len),
                    "refLen": int(s.ref_len),
                    "counts": [int(x) for x in s.counts],
                    "totals": [int(x) for x in s.totals],
                }

            c.update(run_case(go))
            cases.append(c)
    return {"implementation": f"sacrebleu {sacrebleu.__version__} corpus_bleu", "cases": cases}


def load_rouge_score():
    for modname, label in [("rouge_score.rouge_scorer", "rouge-score (pip)"), ("rouge.rouge_scorer", "Google rouge-score")]:
        m = try_import(modname)
        if m is not None and hasattr(m, "RougeScorer"):
            if modname.startswith("rouge_score"):
                return m, f"{label} {version_of(m, 'rouge-score')}"
            return m, f"{label} ({args.ref_src_note})"
    return None, None


def gen_rouge(scorer_mod, label):
    nltk = try_import("nltk")
    cases = []
    for name, hyps, per in TEXT_CASES:
        base = text_case_base(name, hyps, per)
        for stem in [False, True]:
            if stem and nltk is None:
                continue
            c = dict(base)
            c["name"] = name + (" stem" if stem else "")
            c["opts"] = {"useStemmer": stem}

            def go():
                sc = scorer_mod.RougeScorer(["rougeL"], use_stemmer=stem)
                ps, rs, fs = [], [], []
                for i, h in enumerate(hyps):
                    targets = clean_refs(base["refs"], i)
                    s = sc.score_multi(targets, h)["rougeL"]
                    ps.append(s.precision)
                    rs.append(s.recall)
                    fs.append(s.fmeasure)
                n = len(hyps)
                return {"precision": fnum(sum(ps) / n), "recall": fnum(sum(rs) / n), "fmeasure": fnum(sum(fs) / n)}

            c.update(run_case(go))
            cases.append(c)
    extra = f", nltk {nltk.__version__}" if nltk is not None else " (no nltk: no stemmer cases)"
    return {"implementation": f"{label} RougeScorer(['rougeL']).score_multi, mean over sentences{extra}", "cases": cases}


def gen_rouge_torchmetrics():
    import torch
    import torchmetrics
    from torchmetrics.functional.text.rouge import rouge_score

    nltk = try_import("nltk")
    cases = []
    for name, hyps, per in TEXT_CASES:
        base = text_case_base(name, hyps, per)
        for stem in [False, True]:
            if stem and nltk is None:
                continue
            c = dict(base)
            c["name"] = name + (" stem" if stem else "")
            c["opts"] = {"useStemmer": stem}

            def go():
                targets = [clean_refs(base["refs"], i) for i in range(len(hyps))]
                r = rouge_score(hyps, targets, rouge_keys="rougeL", use_stemmer=stem, accumulate="best")
                return {k: fnum(r[f"rougeL_{k}"].to(torch.float64).item()) for k in ["precision", "recall", "fmeasure"]}

            c.update(run_case(go))
            cases.append(c)
    return {
        "implementation": f"torchmetrics {torchmetrics.__version__} rouge_score(rouge_keys='rougeL', accumulate='best') (float32)",
        "tolerance": 2e-6,
        "cases": cases,
    }


def gen_porter():
    import nltk
    from nltk.stem import porter

    st = porter.PorterStemmer()
    words = sorted(
        set(
            "caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized "
            "hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational "
            "valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization "
            "predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti "
            "sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival "
            "allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment "
            "dependent adoption homologou communism activate angulariti homologous effective bowdlerize probate "
            "rate cease controll roll generalizations generalization oscillators running runner runners happily "
            "happiness dying lying tying news innings inning outings canning howe proceed exceed succeed skies "
            "dies died spied flies cried tried enjoy enjoyment spying syzygy toy yyyy ying ied ies eed oed "
            "agreement argument abbey abyss anyway bye eyes quietly quickly family friendly italian restaurant "
            "located riverside centre customer rating serves coffee stars priced cheap expensive children "
            "aaron abaci abacus abandonment abated absolutely accommodation accordingly achievement "
            "alli fulli logi analogi archaeologi ologi sensibli bli abli ousli entli "
            "1990s 2nd 3rd 4th 100th 50s 1st e2e x11 a1b2 mp3s "
            "national nationalize nationalization nationally traditional traditionally mississippi "
            "feeds feeding breed breeding bleed needed speed speeding".split()
        )
    )
    cases = [{"word": w, "stem": st.stem(w)} for w in words]
    return {"implementation": f"nltk {nltk.__version__} PorterStemmer() (mode {st.mode})", "cases": cases}


def gen_coco(kind):
    mod = importlib.import_module("pycocoevalcap.cider.cider" if kind == "cider" else "pycocoevalcap.rouge.rouge")
    cases = []
    for name, hyps, per in TEXT_CASES:
        base = text_case_base(name, hyps, per)
        c = dict(base)

        def go():
            gts, res = {}, {}
            for i, h in enumerate(hyps):
                gts[i] = clean_refs(base["refs"], i)
                res[i] = [h]
            scorer = mod.Cider() if kind == "cider" else mod.Rouge()
            score, scores = scorer.compute_score(gts, res)
            return {"score": fnum(score), "perSentence": [fnum(s) for s in scores]}

        c.update(run_case(go))
        cases.append(c)
    ver = version_of(try_import("pycocoevalcap"), "pycocoevalcap")
    what = f"pycocoevalcap {ver}" if ver != "unknown" else f"pycocoevalcap ({args.ref_src_note})"
    cls = "Cider().compute_score" if kind == "cider" else "Rouge().compute_score"
    return {"implementation": f"{what} {cls}", "cases": cases}


def write_sgm(path, streams, file_type):
    """As e2e-metrics' measure_scores.create_mteval_file: one <doc> per reference stream."""
    with open(path, "w", encoding="utf-8") as fh:
        settype = file_type + "set"
        fh.write('<%s setid="%s" srclang="any" trglang="%s">\n' % (settype, "e2e", "en"))
        for no, stream in enumerate(streams):
            sysid = file_type + ("" if len(streams) == 1 else "_%d" % no)
            fh.write('<doc docid="test" genre="news" origlang="any" sysid="%s">\n<p>\n' % sysid)
            for inst_no, inst in enumerate(stream, start=1):
                fh.write('<seg id="%d">%s</seg>\n' % (inst_no, "" if inst is None else inst))
            fh.write("</p>\n</doc>\n")
        fh.write("</%s>" % settype)


def gen_mteval(mteval):
    cases = []
    decimals = None
    for name, hyps, per in TEXT_CASES:
        base = text_case_base(name, hyps, per)
        c = dict(base)

        def go():
            nonlocal decimals
            with tempfile.TemporaryDirectory(prefix="mteval-") as d:
                write_sgm(os.path.join(d, "ref.sgm"), base["refs"], "ref")
                write_sgm(os.path.join(d, "tst.sgm"), [hyps], "tst")
                write_sgm(os.path.join(d, "src.sgm"), [[""] * len(hyps)], "src")
                p = subprocess.run(
                    ["perl", mteval, "-r", "ref.sgm", "-s", "src.sgm", "-t", "tst.sgm", "-f", "stats.txt"],
                    cwd=d, capture_output=True, text=True, encoding="utf-8",
                )
                out = p.stdout + p.stderr
                if p.returncode != 0:
                    raise RuntimeError("mteval exited %d: %s" % (p.returncode, out.strip().splitlines()[-1] if out.strip() else ""))
                full = re.search(r"NIST full cum:((?: \S+)+)", out)
                if full:  # a copy with the full-precision print line (see --mteval-note)
                    decimals = 17
                    cum = [float(v) for v in full.group(1).split()]
                    bleu = float(re.search(r"BLEU full cum: (\S+)", out).group(1))
                else:  # the script as published prints 4 decimals
                    decimals = 4
                    m = re.search(r"Cumulative N-gram scoring\n.*\n.*\n NIST:((?:\s+\S+){9})", out)
                    cum = [float(v) for v in m.group(1).split()]
                    bleu = float(re.search(r"BLEU score = ([0-9.]+)", out).group(1))
                return {"nist": [fnum(v) for v in cum], "bleu": fnum(bleu)}

        c.update(run_case(go))
        cases.append(c)
    perl_v = subprocess.run(["perl", "-e", "print $^V"], capture_output=True, text=True).stdout
    note = f" ({args.mteval_note})" if args.mteval_note else ""
    out = {
        "implementation": f"{os.path.basename(mteval)}{note} under perl {perl_v}, driven as e2e-metrics measure_scores.run_mteval"
        " (NIST cumulative n = 1..9, and the BLEU of the same run)",
        "cases": cases,
    }
    if decimals == 4:
        out["tolerance"] = 6e-5
    return out


# ---- assemble -----------------------------------------------------------------------------------------
existing = {}
if os.path.exists(args.out):
    with open(args.out, encoding="utf-8") as fh:
        existing = json.load(fh).get("sections", {})

rouge_mod, rouge_label = load_rouge_score()
GENERATORS = {
    "classification": (lambda: gen_classification(), try_import("sklearn") is not None, "scikit-learn"),
    "correlation": (lambda: gen_correlation(), try_import("scipy.stats") is not None, "scipy"),
    "perplexity": (lambda: gen_perplexity(), True, ""),
    "bleu": (lambda: gen_bleu(), try_import("sacrebleu") is not None, "sacrebleu"),
    "rougeL": (lambda: gen_rouge(rouge_mod, rouge_label), rouge_mod is not None, "rouge-score"),
    "rougeL_torchmetrics": (lambda: gen_rouge_torchmetrics(), try_import("torchmetrics") is not None, "torchmetrics"),
    "porter": (lambda: gen_porter(), try_import("nltk.stem.porter") is not None, "nltk"),
    "rougeLCoco": (lambda: gen_coco("rouge"), try_import("pycocoevalcap.rouge.rouge") is not None, "pycocoevalcap"),
    "cider": (lambda: gen_coco("cider"), try_import("pycocoevalcap.cider.cider") is not None, "pycocoevalcap"),
    "mteval": (lambda: gen_mteval(args.mteval), bool(args.mteval), "--mteval PATH (perl mteval-v13a-sig.pl)"),
}

sections = {k: v for k, v in existing.items() if k in GENERATORS}  # drops sections of older layouts
for name, (gen, available, needs) in GENERATORS.items():
    if ONLY is not None and name not in ONLY:
        print(f"{name:20s} skipped (--only)" + (" -- kept from existing file" if name in existing else ""))
        continue
    if not available:
        if name in existing:
            print(f"{name:20s} NOT regenerated: {needs} not available here -- kept from existing file ({existing[name]['implementation']})")
        else:
            print(f"{name:20s} NOT generated: {needs} not available here -- the TS tests skip it")
        continue
    sections[name] = gen()
    sections[name]["python"] = sys.version.split()[0]
    n = len(sections[name]["cases"])
    print(f"{name:20s} {n:4d} cases  <- {sections[name]['implementation']}")

os.makedirs(os.path.dirname(args.out), exist_ok=True)
with open(args.out, "w", encoding="utf-8") as fh:
    json.dump({"generator": "test/parity/gen_metrics.py", "sections": sections}, fh, ensure_ascii=False, indent=1, allow_nan=False)
    fh.write("\n")
print(f"wrote {os.path.relpath(args.out)}")
