#!/usr/bin/env python3
"""The Python pipeline `chuanspeed preprocess` replaces, for conformance and the benchmark:
records from JSON / JSONL (json) or Parquet (pyarrow), the same handlers (plain / alpaca /
conversation, docs/data.md), SentencePiece's Python package, and Megatron-core's own
IndexedDatasetBuilder writing PREFIX_<key>_document.{bin,idx}; with --workers N a
multiprocessing pool (imap, chunksize 32) as Megatron-LM's tools/preprocess_data.py does.

    /usr/bin/python3 tools/reference/preprocess_ref.py --input F --output-prefix P \
        --tokenizer-name-or-path DIR [--handler-name alpaca] [--json-keys text] [--append-eod] [--workers N]

Needs: pip install sentencepiece pyarrow; pip install --no-deps megatron-core.
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np
import sentencepiece as spm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import megatron_loader  # noqa: E402,F401
from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder  # noqa: E402

ALPACA_IN = ("Below is an instruction that describes a task, paired with an input that provides further "
             "context. Write a response that appropriately completes the request.\n\n"
             "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}")
ALPACA_NO = ("Below is an instruction that describes a task. Write a response that appropriately completes "
             "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}")
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions.")


def records(path, columns):
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(path)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(columns=cols):
            yield from batch.to_pylist()
        return
    with open(path, encoding="utf-8") as f:
        head = f.read(1024).lstrip("\ufeff \t\r\n")
        f.seek(0)
        if head.startswith("["):
            yield from json.load(f)
        else:
            for line in f:
                if line.strip():
                    yield json.loads(line)


class Encoder:
    def __init__(self, args):
        self.args = args

    def initializer(self):
        Encoder.sp = spm.SentencePieceProcessor(model_file=self.args.model)

    def pieces(self, rec):
        """One list of sequences per key; a sequence is a list of (text, eos_after)."""
        h = self.args.handler_name
        if h == "alpaca":
            tmpl = ALPACA_IN if rec.get("input") else ALPACA_NO
            text = tmpl.replace("{instruction}", "\0I").replace("{input}", "\0N").replace("{output}", "\0O")
            text = text.replace("\0I", rec["instruction"]).replace("\0N", rec.get("input") or "")
            return [[[(text.replace("\0O", rec["output"]), False)]]]
        if h == "conversation":
            seq, text, started = [], VICUNA_SYSTEM + " ", False
            for turn in rec["conversations"]:
                human = turn["from"] in ("human", "user")
                if not started and not human:
                    continue
                started = True
                if human:
                    text += "USER: " + turn["value"] + " "
                else:
                    seq.append((text + "ASSISTANT: " + turn["value"], True))
                    text = ""
            if text and started:
                seq.append((text, False))
            return [[seq] if seq else []]
        out = []
        for key in self.args.json_keys:
            v = rec[key]
            out.append([[(s or "", False)] for s in (v if isinstance(v, list) else [v])])
        return out

    def encode(self, rec):
        sp, eos = Encoder.sp, Encoder.sp.eos_id()
        docs = []
        for sequences in self.pieces(rec):
            ids, lens = [], []
            for seq in sequences:
                s = []
                for text, eos_after in seq:
                    s += sp.encode(text) if text else []
                    if eos_after:
                        s.append(eos)
                if s:
                    ids += s
                    lens.append(len(s))
            if self.args.append_eod and ids and ids[-1] != eos:
                ids.append(eos)
                lens[-1] += 1
            docs.append((ids, lens))
        return docs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output-prefix", required=True)
    p.add_argument("--tokenizer-name-or-path", required=True)
    p.add_argument("--handler-name", default="plain")
    p.add_argument("--json-keys", nargs="+", default=["text"])
    p.add_argument("--append-eod", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    t = args.tokenizer_name_or_path
    args.model = os.path.join(t, "tokenizer.model") if os.path.isdir(t) else t
    keys = ["text"] if args.handler_name != "plain" else args.json_keys
    columns = {"alpaca": ["instruction", "input", "output"], "conversation": ["conversations"]}.get(
        args.handler_name, args.json_keys)
    enc = Encoder(args)
    enc.initializer()
    dtype = DType.optimal_dtype(Encoder.sp.get_piece_size())
    builders = {k: IndexedDatasetBuilder(f"{args.output_prefix}_{k}_document.bin", dtype=dtype) for k in keys}
    start, n, tokens = time.time(), 0, 0
    recs = (r for path in args.input.split(",") for r in records(path, columns))
    if args.workers > 1:
        pool = multiprocessing.Pool(args.workers, initializer=enc.initializer)
        encoded = pool.imap(enc.encode, recs, 32)
    else:
        encoded = map(enc.encode, recs)
    for docs in encoded:
        for k, (ids, lens) in zip(keys, docs):
            builders[k].add_document(np.array(ids, dtype=np.int64), lens)
            tokens += len(ids)
        n += 1
    for k in keys:
        builders[k].finalize(f"{args.output_prefix}_{k}_document.idx")
    s = time.time() - start
    print(f"python pipeline: {n} documents, {tokens} tokens in {s:.2f} s: {n / s:.0f} docs/s, "
          f"{tokens / s:.0f} tokens/s ({args.workers} worker{'s' if args.workers > 1 else ''})")


if __name__ == "__main__":
    main()
