#!/usr/bin/env python3
"""Reads a ChuanSpeed --tensorboard-dir with TensorBoard's own reader (EventAccumulator) and prints
every scalar, so the event files can be checked against metrics.jsonl.

    /usr/bin/python3 -m pip install --break-system-packages tensorboard   # once
    /usr/bin/python3 tools/check_tensorboard.py RUN/tensorboard [RUN/metrics.jsonl]

With a metrics.jsonl it also checks that lm loss and learning rate (training records) and
lm loss validation (validation records: iteration, valid_lm_loss, valid_ppl) agree to float32
precision, and exits 1 on a mismatch. A repeated iteration (a resumed run) is checked with its last
record; a null value (how metrics.jsonl stores NaN / inf) must be non-finite in TensorBoard too.
"""
import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# metrics.jsonl key -> TensorBoard tag, by the kind of record that holds the key.
TRAIN_TAGS = (("lm loss", "lm_loss"), ("learning-rate", "learning_rate"))
VALID_TAGS = (("lm loss validation", "valid_lm_loss"),)


def expected_values(path):
    """{(tag, iteration): value} from metrics.jsonl; the last record of an iteration wins."""
    want = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if "lm_loss" in r:
                pairs = TRAIN_TAGS
            elif "valid_lm_loss" in r:
                pairs = VALID_TAGS
            else:
                continue  # another kind of record: nothing TensorBoard is expected to hold
            for tag, key in pairs:
                if key not in r:
                    sys.exit(f"{path}:{lineno}: record without {key!r}: {line.strip()[:80]}")
                want[(tag, r["iteration"])] = r[key]
    return want


def agrees(got, want):
    if got is None:
        return False
    if want is None or not math.isfinite(want):  # null: NaN / inf in the run
        return not math.isfinite(got)
    return abs(got - want) <= 1e-6 * max(1.0, abs(want))


def main():
    acc = EventAccumulator(sys.argv[1])
    acc.Reload()
    tags = acc.Tags()["scalars"]
    series = {t: {e.step: e.value for e in acc.Scalars(t)} for t in tags}
    for t in sorted(series):
        print(t, sorted(series[t].items()))
    if len(sys.argv) > 2:
        want = expected_values(sys.argv[2])
        bad = 0
        for (tag, it), value in sorted(want.items()):
            got = series.get(tag, {}).get(it)
            if not agrees(got, value):
                print("mismatch", tag, it, got, value)
                bad += 1
        print("checked", len(want), "values against", sys.argv[2], "->", "OK" if not bad else f"{bad} mismatches")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
