#!/usr/bin/python3
"""Writes the demo's instruction corpus into assets/demo/ (committed; `make demo` never runs this).

Eight tasks whose answers a program can check, so that a tiny model visibly learns them in a few
minutes of CPU training and the demo can print an accuracy on questions it never saw:

  add        What is 345 + 27? / Add the two numbers. [345 and 27]            -> 372
  subtract   What is 345 - 27? / Subtract the second number from the first.   -> 318
  larger     Which number is larger? [482 or 97] / Which is larger, 482 or 97? -> 482
  next       What number comes next in the sequence? [3, 7, 11, 15]           -> 19
  sort       Sort the digits from smallest to largest. [7 2 9 4]              -> 2 4 7 9
  reverse    Reverse the word. [garden] / Write "garden" backwards.          -> nedrag
  uppercase  Write the word in capital letters. [garden]                       -> GARDEN
  count      How many letters are in the word "garden"? / Count the letters.   -> 6

Each task has one phrasing with an input and one without, so both Stanford Alpaca templates occur.
Files (sizes are printed at the end):
  alpaca_demo.parquet     the training corpus: instruction, input, output, text (the `text` column
                          is tatsu-lab/alpaca's: the Stanford Alpaca prompt with the output appended)
  alpaca_demo.json        the first JSON_ROWS records without `text`, shaped like alpaca_data.json
  conversations_demo.json FastChat's alpaca-data-conversation.json shape (one or two turns)
  heldout.jsonl           questions whose (instruction, input) never occurs in the training files

Deterministic: one random.Random(SEED) stream, no clock, no hash ordering; pyarrow 21 writes
byte-identical files for identical tables. Rerun by hand and commit the output:
    /usr/bin/python3 tools/demo/make_demo_corpus.py            (pyarrow 21.0.0)
    tools/demo/train_demo_tokenizer.sh                         (the tokenizer, from this corpus)
`--tokenizer-text FILE` also writes the lines the tokenizer is trained on (the `text` column split
at newlines, in row order; spm_train reads one sentence per line).
"""
import argparse
import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "assets", "demo")

SEED = 20240601
TRAIN_ROWS = 20000
ROW_GROUP = 5000          # four row groups
JSON_ROWS = 2000          # alpaca_demo.json keeps the repository small
CONVERSATIONS = 300
HELDOUT_PER_TASK = 25     # 8 tasks -> 200 held-out questions

# Stanford Alpaca's prompt (tatsu-lab/stanford_alpaca train.py PROMPT_DICT); tatsu-lab/alpaca's
# `text` column is this prompt followed directly by the output.
PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                "further context. Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n"
                   "### Instruction:\n{instruction}\n\n### Response:\n")

# Common short English words for the letter tasks.
WORDS = """
able acid aged also area army away baby back ball band bank base bath bear beat been beer bell
belt best bird blow blue boat body bomb bond bone book boom born boss both bowl bulk burn bush
busy cake call calm came camp card care case cash cast cell chat chip city club coal coat code
cold come cook cool cope copy core cost crew crop dark data date dawn days dead deal dean dear
debt deep deny desk dial diet disc dish done door dose down draw drew drop drug dual duke dust
duty each earn ease east easy edge else even ever exit face fact fail fair fall farm fast fate
fear feed feel feet fell felt file fill film find fine fire firm fish five flat flow food foot
form fort four free from fuel full fund gain game gate gave gear gift girl give glad goal goes
gold golf gone good gray grew grey grow gulf hair half hall hand hang hard harm hate have head
hear heat held hell help here hero high hill hire hold hole holy home hope host hour huge hung
hunt hurt idea inch into iron item jack jane jean john join jump jury just keen keep kent kept
kick kill kind king knee knew know lack lady laid lake land lane last late lead left less life
lift like line link list live load loan lock logo long look lord lose loss lost love luck made
mail main make male many mark mass matt meal mean meat meet menu mere mike mile milk mill mind
mine miss mode mood moon more most move much must name navy near neck need news next nice nick
nine none nose note okay once only open oral over pace pack page paid pain pair palm park part
pass past path peak pick pink pipe plan play plot plug plus poll pool poor port post pull pure
push race rail rain rank rare rate read real rear rely rent rest rice rich ride ring rise risk
road rock role roll roof room root rose rule rush safe said sake sale salt same sand save seat
seed seek seem seen self sell send sent ship shop shot show shut sick side sign site size skin
slip slow snow soft soil sold sole some song soon sort soul spot star stay step stop such suit
sure take tale talk tall tank tape task team tech tell tend term test text than that them then
they thin this thus till time tiny told tone took tool tour town tree trip true tune turn twin
type unit upon used user vary vast very vice view vote wage wait wake walk wall want ward warm
wash wave ways weak wear week well went were west what when whom wide wife wild will wind wine
wing wire wise wish with wood word wore work yard yeah year your zero zone
apple bread chair dance eagle fruit grass horse juice knife lemon money night ocean paper queen
river sugar table tiger water young zebra anchor basket candle dinner engine forest garden hammer
island jacket kitten ladder market needle orange pencil rabbit silver tomato violin window yellow
""".split()

TASKS = ["add", "subtract", "larger", "next", "sort", "reverse", "uppercase", "count"]
WEIGHTS = [20, 15, 10, 15, 10, 10, 10, 10]


def number(rng):
    """1 to 3 digits, each length equally likely, so small numbers are not rare."""
    digits = rng.randint(1, 3)
    return rng.randint(0, 9) if digits == 1 else rng.randint(10 ** (digits - 1), 10 ** digits - 1)


def make(task, rng):
    """One record {instruction, input, output} of a task; the phrasing is drawn too."""
    with_input = rng.random() < 0.5
    if task in ("add", "subtract"):
        a, b = number(rng), number(rng)
        if task == "subtract" and a < b:
            a, b = b, a
        sign, verb = ("+", "Add the two numbers.") if task == "add" else (
            "-", "Subtract the second number from the first.")
        out = str(a + b if task == "add" else a - b)
        if with_input:
            return verb, f"{a} and {b}", out
        return f"What is {a} {sign} {b}?", "", out
    if task == "larger":
        a, b = number(rng), number(rng)
        while a == b:
            b = number(rng)
        if with_input:
            return "Which number is larger?", f"{a} or {b}", str(max(a, b))
        return f"Which is larger, {a} or {b}?", "", str(max(a, b))
    if task == "next":
        start, step, terms = rng.randint(0, 99), rng.randint(1, 12), rng.randint(3, 5)
        seq = ", ".join(str(start + i * step) for i in range(terms))
        out = str(start + terms * step)
        if with_input:
            return "What number comes next in the sequence?", seq, out
        return f"What comes after {seq}?", "", out
    if task == "sort":
        digits = [rng.randint(0, 9) for _ in range(rng.randint(3, 6))]
        text, out = " ".join(map(str, digits)), " ".join(map(str, sorted(digits)))
        if with_input:
            return "Sort the digits from smallest to largest.", text, out
        return f"Sort these digits: {text}", "", out
    word = rng.choice(WORDS)
    if task == "reverse":
        if with_input:
            return "Reverse the word.", word, word[::-1]
        return f'Write "{word}" backwards.', "", word[::-1]
    if task == "uppercase":
        if with_input:
            return "Write the word in capital letters.", word, word.upper()
        return f'Write "{word}" in capital letters.', "", word.upper()
    assert task == "count"
    if with_input:
        return "Count the letters in the word.", word, str(len(word))
    return f'How many letters are in the word "{word}"?', "", str(len(word))


def record(task, rng):
    instruction, inp, out = make(task, rng)
    return {"instruction": instruction, "input": inp, "output": out, "task": task}


def alpaca_text(r):
    prompt = PROMPT_INPUT if r["input"] else PROMPT_NO_INPUT
    return prompt.format(instruction=r["instruction"], input=r["input"]) + r["output"]


def human_turn(r):
    """FastChat's convert_alpaca.py: the input follows the instruction after "\\nInput:\\n"."""
    return r["instruction"] + ("\nInput:\n" + r["input"] if r["input"].strip() else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--tokenizer-text", help="also write the tokenizer's training lines here")
    args = ap.parse_args()
    rng = random.Random(SEED)

    # Held-out questions first; training then skips every (instruction, input) they use.
    heldout, held_keys = [], set()
    for task in TASKS:
        n = 0
        while n < HELDOUT_PER_TASK:
            r = record(task, rng)
            key = (r["instruction"], r["input"])
            if key in held_keys:
                continue
            held_keys.add(key)
            heldout.append(r)
            n += 1

    def training_record():
        while True:
            r = record(rng.choices(TASKS, WEIGHTS)[0], rng)
            if (r["instruction"], r["input"]) not in held_keys:
                return r

    train = [training_record() for _ in range(TRAIN_ROWS)]
    convs = []
    for i in range(CONVERSATIONS):
        turns = []
        for _ in range(2 if i % 3 == 0 else 1):
            r = training_record()
            turns += [{"from": "human", "value": human_turn(r)}, {"from": "gpt", "value": r["output"]}]
        convs.append({"id": f"demo_{i}", "conversations": turns})

    os.makedirs(args.out, exist_ok=True)
    cols = ["instruction", "input", "output"]
    table = pa.table({c: pa.array([r[c] for r in train], pa.string()) for c in cols}
                     | {"text": pa.array([alpaca_text(r) for r in train], pa.string())})
    pq.write_table(table, os.path.join(args.out, "alpaca_demo.parquet"), compression="snappy",
                   row_group_size=ROW_GROUP)
    with open(os.path.join(args.out, "alpaca_demo.json"), "w", encoding="utf-8") as f:
        json.dump([{c: r[c] for c in cols} for r in train[:JSON_ROWS]], f, indent=4, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.out, "conversations_demo.json"), "w", encoding="utf-8") as f:
        json.dump(convs, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.out, "heldout.jsonl"), "w", encoding="utf-8") as f:
        for r in heldout:
            f.write(json.dumps({c: r[c] for c in cols + ["task"]}, ensure_ascii=False) + "\n")
    if args.tokenizer_text:
        with open(args.tokenizer_text, "w", encoding="utf-8") as f:
            for r in train:
                for line in alpaca_text(r).split("\n"):
                    if line:
                        f.write(line + "\n")

    for name in sorted(os.listdir(args.out)):
        p = os.path.join(args.out, name)
        if os.path.isfile(p):
            print(f"{os.path.getsize(p):>9}  {os.path.relpath(p, ROOT)}")
    counts = {t: sum(r["task"] == t for r in train) for t in TASKS}
    print("training rows per task:", counts)


if __name__ == "__main__":
    main()
