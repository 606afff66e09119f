#!/usr/bin/env python3
"""A JSONL corpus for `make bench-preprocess`, about MEGABYTES in size: documents drawn from two
sources, so the text is not just the demo's small vocabulary — the demo corpus's Alpaca texts
(1 to 16 per document), and paragraphs of real English prose and code from this machine (the
Python standard library's sources and /usr/share/common-licenses, present on every Debian with
python3), a few paragraphs per document. Also writes the texts NUL-separated for tokenize_bench.
    make_preprocess_corpus.py OUT_DIR [MEGABYTES]
"""
import glob
import json
import os
import random
import sys
import sysconfig

import pyarrow.parquet as pq

out, mb = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 64
here = os.path.dirname(os.path.abspath(__file__))
alpaca = pq.read_table(os.path.join(here, "..", "..", "assets", "demo", "alpaca_demo.parquet")).column("text").to_pylist()
paragraphs = []
files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")) + glob.glob("/usr/share/common-licenses/*"))
for path in files:
    try:
        text = open(path, encoding="utf-8").read()
    except (UnicodeDecodeError, IsADirectoryError):
        continue
    paragraphs += [p for p in text.split("\n\n") if len(p.strip()) > 40]
rng = random.Random(1)
os.makedirs(out, exist_ok=True)
size, n = 0, 0
with open(os.path.join(out, "corpus.jsonl"), "w") as j, open(os.path.join(out, "texts.bin"), "wb") as t:
    while size < mb * 1e6:
        if rng.random() < 0.25:
            doc = "\n\n".join(rng.choice(alpaca) for _ in range(rng.choice((1, 1, 2, 4, 16))))
        else:
            k = rng.randrange(len(paragraphs))
            doc = "\n\n".join(paragraphs[k:k + rng.choice((1, 2, 4, 8))])
        line = json.dumps({"id": n, "text": doc}, ensure_ascii=False) + "\n"
        j.write(line)
        t.write(doc.encode() + b"\0")
        size += len(line.encode())
        n += 1
print(f"{out}/corpus.jsonl: {n} documents, {size / 1e6:.1f} MB ({len(paragraphs)} prose/code paragraphs from {len(files)} files)")
