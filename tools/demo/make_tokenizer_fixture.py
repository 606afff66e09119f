#!/usr/bin/python3
"""Writes tests/fixtures/tokenizer/varied.json: a varied corpus and the ids SentencePiece's own
command-line encoder (Debian's `spm_encode --output_format=id`) gives for it with the demo
tokenizer (assets/demo/tokenizer) and, when ../shared/reference is present, Baichuan-13B's.
tests/data/tokenizer_test.cpp compares cs::Tokenizer with these ids (and with spm_encode live).

spm_encode reads one sentence per line, so a text with newlines is put together from its lines:
  ids(L0 "\\n" L1 ... "\\n" Lk) = ids(L0) + for each later line: [id("\\n")] + ids("\\t" Li)[2:]
Both tokenizers have "\\n" and "\\t" as user-defined pieces, which BPE never merges across, and
the dummy prefix "▁" is added once, at the start of the text: encoding "\\t" Li gives "▁", "\\t",
then Li exactly as it is encoded after a newline, with no prefix of its own. An empty L0 still
gets the prefix: ["▁"]. The test checks this construction against the library (cs::Tokenizer and
a SentencePieceProcessor opened directly, which is what Python's sentencepiece wraps).

Rerun by hand after changing the texts or the demo tokenizer, and commit the output:
    /usr/bin/python3 tools/demo/make_tokenizer_fixture.py
"""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "varied.json")
MODELS = {
    "demo": os.path.join(ROOT, "assets", "demo", "tokenizer", "tokenizer.model"),
    "baichuan": os.path.join(ROOT, "..", "shared", "reference", "baichuan-13b-base", "tokenizer.model"),
}

PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                "further context. Write a response that appropriately completes the request.\n\n"
                "### Instruction:\nAdd the two numbers.\n\n### Input:\n70 and 84\n\n### Response:\n154")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n"
                   "### Instruction:\nWrite \"garden\" backwards.\n\n### Response:\nnedrag")

TEXTS = [
    "",
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "What is 345 + 27?",
    "Write \"garden\" backwards.",
    "12345678901234567890 and 3.14159, -42, 1e9",
    "百川大模型是一个开源的中英双语大语言模型。",
    "emoji 😀🚀 and mixed 中文 text 👩‍👩‍👧",
    "tabs\there\tand   runs     of spaces",
    "def f(x):    return x * 2  # code",
    "   leading and trailing spaces   ",
    " ",
    "\t",
    "\t\tdouble tab",
    "Ünïcödé café naïve ß Ελληνικά русский",
    "<s> </s> <unk> are plain text here",
    "ﬁne ① ｶﾀｶﾅ １２３ ＡＢＣ",  # nmt_nfkc folds these: decode gives the folded text
    PROMPT_INPUT,
    PROMPT_NO_INPUT,
    "line one\nline two",
    "\n",
    "\n\nstarts with newlines",
    "ends with a newline\n",
    "中文\n😀\n\tindented",
    "a\n\n\n  b",
    "Human: hi\nAssistant: 2 + 2 = 4\n",
]


def run(cmd, text):
    return subprocess.run(cmd, input=text.encode(), stdout=subprocess.PIPE, check=True).stdout.decode()


def encode_line(model, line):
    assert "\n" not in line
    out = run(["spm_encode", f"--model={model}", "--output_format=id"], line + "\n")
    assert out.count("\n") == 1, out
    return [int(x) for x in out.split()]


def varint(b, i):
    value = shift = 0
    while True:
        value |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if b[i - 1] < 0x80:
            return value, i


def piece_id(model, piece):
    """The id of a piece, read from the ModelProto (field 1: pieces; their field 1: the string);
    spm_export_vocab cannot show the "\\n" piece unambiguously."""
    b, i, index = open(model, "rb").read(), 0, 0
    while i < len(b):
        key, i = varint(b, i)
        wire = key & 7
        if wire == 0:
            _, i = varint(b, i)
            continue
        assert wire == 2, f"unexpected wire type {wire}"
        n, i = varint(b, i)
        if key >> 3 == 1:
            k, j = varint(b, i)
            assert k == (1 << 3 | 2)
            m, j = varint(b, j)
            if b[j:j + m] == piece.encode():
                return index
            index += 1
        i += n
    raise KeyError(piece)


def encode(model, text, newline_id):
    lines = text.split("\n")
    if len(lines) == 1:
        return encode_line(model, text)
    ids = encode_line(model, lines[0]) if lines[0] else encode_line(model, "\t")[:1]
    for line in lines[1:]:
        tail = encode_line(model, "\t" + line)
        assert len(tail) >= 2, tail
        ids += [newline_id] + tail[2:]
    return ids


def decode(model, ids):
    return run(["spm_decode", f"--model={model}", "--input_format=id"], " ".join(map(str, ids)) + "\n")[:-1]


def main():
    models = {name: path for name, path in MODELS.items() if os.path.exists(path)}
    entries = [{"text": t} for t in TEXTS]
    for name, model in models.items():
        newline_id = piece_id(model, "\n")
        for e in entries:
            e[name] = encode(model, e["text"], newline_id)
            if "\n" not in e["text"]:
                d = decode(model, e[name])
                if d != e["text"]:
                    e[name + "_decoded"] = d
        print(f"{name}: newline id {newline_id}, {sum(len(e[name]) for e in entries)} ids")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:  # one line per field: diffs stay readable
        f.write('{"generator": "tools/demo/make_tokenizer_fixture.py (spm_encode 0.1.97)",\n')
        f.write(f' "models": {json.dumps(sorted(models))},\n "texts": [\n')
        for n, e in enumerate(entries):
            fields = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in e.items()]
            f.write(" {\n" + ",\n".join(fields) + "\n }" + ("," if n + 1 < len(entries) else "") + "\n")
        f.write("]}\n")
    print("wrote", os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    main()
