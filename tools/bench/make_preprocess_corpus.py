#!/usr/bin/env python3
"""A JSONL corpus for `make bench-preprocess`: the demo corpus's Alpaca texts, in varied
combinations so documents differ (short instructions and long multi-instruction documents), up
to a target size; also the same texts NUL-separated for tokenize_bench.
    make_preprocess_corpus.py OUT_DIR [MEGABYTES]
"""
import json
import os
import random
import sys

import pyarrow.parquet as pq

out, mb = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 64
here = os.path.dirname(os.path.abspath(__file__))
texts = pq.read_table(os.path.join(here, "..", "..", "assets", "demo", "alpaca_demo.parquet")).column("text").to_pylist()
rng = random.Random(1)
os.makedirs(out, exist_ok=True)
size = 0
with open(os.path.join(out, "corpus.jsonl"), "w") as j, open(os.path.join(out, "texts.bin"), "wb") as t:
    n = 0
    while size < mb * 1e6:
        doc = "\n\n".join(rng.choice(texts) for _ in range(rng.choice((1, 1, 2, 4, 16))))
        line = json.dumps({"id": n, "text": doc}, ensure_ascii=False) + "\n"
        j.write(line)
        t.write(doc.encode() + b"\0")
        size += len(line.encode())
        n += 1
print(f"{out}/corpus.jsonl: {n} documents, {size / 1e6:.1f} MB")
