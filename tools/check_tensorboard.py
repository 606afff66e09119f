#!/usr/bin/env python3
"""Reads a ChuanSpeed --tensorboard-dir with TensorBoard's own reader (EventAccumulator) and prints
every scalar, so the event files can be checked against metrics.jsonl.

    /usr/bin/python3 -m pip install --break-system-packages tensorboard   # once
    /usr/bin/python3 tools/check_tensorboard.py RUN/tensorboard [RUN/metrics.jsonl]

With a metrics.jsonl it also checks that lm loss and learning rate agree (to float32 precision)
and exits 1 on a mismatch.
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    acc = EventAccumulator(sys.argv[1])
    acc.Reload()
    tags = acc.Tags()["scalars"]
    series = {t: {e.step: e.value for e in acc.Scalars(t)} for t in tags}
    for t in sorted(series):
        print(t, sorted(series[t].items()))
    if len(sys.argv) > 2:
        bad = 0
        for line in open(sys.argv[2]):
            r = json.loads(line)
            for tag, key in (("lm loss", "lm_loss"), ("learning-rate", "learning_rate")):
                got = series.get(tag, {}).get(r["iteration"])
                if got is None or abs(got - r[key]) > 1e-6 * max(1.0, abs(r[key])):
                    print("mismatch", tag, r["iteration"], got, r[key])
                    bad += 1
        print("checked against", sys.argv[2], "->", "OK" if not bad else f"{bad} mismatches")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
