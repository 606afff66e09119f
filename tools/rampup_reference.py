#!/usr/bin/env python3
"""Writes tests/fixtures/rampup/megatron_rampup.json: Megatron-core's own batch-size rampup
(RampupBatchsizeNumMicroBatchesCalculator, megatron/core/num_microbatches_calculator.py, loaded
from the megatron-core wheel on its own: it needs no torch) and Megatron's update_train_iters loop
(megatron/training/training.py) for a few --rampup-batch-size settings. Each case records the
global batch of every iteration up to the end of the rampup (run-length coded) and the iterations
of --train-samples.

  pip download megatron-core --no-deps -d /tmp/mc && cd /tmp/mc && unzip -o *.whl \
      megatron/core/num_microbatches_calculator.py
  python3 tools/rampup_reference.py /tmp/mc/megatron/core/num_microbatches_calculator.py
"""
import importlib.util
import json
import pathlib
import sys

CASES = [  # start, increment, rampup samples, global batch, micro batch x DP, train samples
    (4, 4, 16, 8, 2, 64),
    (7, 3, 100, 25, 1, 1000),
    (32, 32, 3000, 256, 32, 10000),
    (16, 16, 5859375, 1536, 16, 146484375),  # GPT-3 175B's --rampup-batch-size 16 16 5859375
]


def main():
    spec = importlib.util.spec_from_file_location("nmc", sys.argv[1])
    nmc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nmc)
    out = []
    for start, inc, samples, gb, mbdp, train_samples in CASES:
        calc = nmc.RampupBatchsizeNumMicroBatchesCalculator(gb, mbdp, 1, False, 0, start, inc, samples)
        # update_train_iters: the rampup's iterations, then whole global batches
        runs, iterations, consumed = [], 0, 0
        while consumed <= samples:
            calc.update(consumed, consistency_check=True)
            b = calc.get_current_global_batch_size()
            if runs and runs[-1][0] == b:
                runs[-1][1] += 1
            else:
                runs.append([b, 1])
            consumed += b
            iterations += 1
        iterations += (train_samples - consumed) // gb
        calc.update(consumed, consistency_check=True)
        out.append({"start": start, "increment": inc, "samples": samples, "global_batch": gb,
                    "train_samples": train_samples, "rampup_batches": runs, "rampup_consumed": consumed,
                    "after_rampup": calc.get_current_global_batch_size(), "train_iters": iterations})
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/rampup/megatron_rampup.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
