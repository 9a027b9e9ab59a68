"""Writes eval_4x.jsonl for the induction-heads demo models: the task at 4x the training length
(256 tokens), where the paper's gap between a selective and an LTI model shows. Same examples as
train_demos.py measures (seed EVAL_SEED + 1, N_EVAL examples), so that
`mambascope-cli eval --task eval_4x.jsonl` re-measures the model cards' "at 4x length" column.

Usage: python3 models/train/write_long_eval.py   (needs torch; CPU is enough)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402
from train_demos import EVAL_SEED, LONG_IH, N_EVAL  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demos")

if __name__ == "__main__":
    seqs, p_len, _ = tasks.sample("induction-heads", N_EVAL, torch.Generator().manual_seed(EVAL_SEED + 1),
                                  length=LONG_IH)
    for variant in ("selective", "lti"):
        path = os.path.join(ROOT, f"induction-heads-{variant}", "eval_4x.jsonl")
        with open(path, "w") as f:
            for row in seqs.tolist():
                f.write(json.dumps({"prompt_ids": row[:p_len], "target_ids": row[p_len:]}) + "\n")
        print("wrote", path)
