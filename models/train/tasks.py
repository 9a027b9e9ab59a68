"""The two synthetic tasks of the Mamba paper (Gu & Dao 2023, section 4.1) and their tokenizer.

Selective Copying: a region of REGION tokens is noise ('.') except for N_COPY data tokens (letters
a..h) at random positions; after the separator '|' the model must write the data tokens in order.
An LTI model cannot do this well: its convolution kernel is fixed, so it cannot skip noise whose
position varies from one example to the next. A selective model sets Δ high on data tokens (let
them into the state) and low on noise (keep the state as it is).

Induction Heads: IH_LEN random letters (a..p) in which a trigger '#' occurs once, followed by a
value letter; the sequence ends with '#' again and the model must answer the value. Trained at
IH_LEN tokens, also measured at 4x that length (extrapolation).

The symbols are single characters, one token each: the tokenizer is a SentencePiece model whose
pieces are exactly <unk> and the symbols (ids in SYMBOLS order from 1), made with spm_train.
"""
import os
import random
import shlex
import shutil
import subprocess
import tempfile

import torch

SYMBOLS = ".|#abcdefghijklmnop"  # id = 1 + index; 0 is <unk>
NOISE, SEP, TRIGGER = 1, 2, 3
LETTER0 = 4                      # 'a'
VOCAB_SIZE = 32                  # embedding rows (the tokenizer has 20 pieces; padded)

REGION, N_COPY, COPY_LETTERS = 128, 8, 8          # selective copying
IH_LEN, IH_LETTERS = 64, 16                        # induction heads


def symbol_id(ch):
    return 1 + SYMBOLS.index(ch)


def ids_to_text(ids):
    return "".join(SYMBOLS[i - 1] if 1 <= i <= len(SYMBOLS) else "?" for i in ids)


def spm_command(prefix, input_path):
    # ',' separates user-defined symbols on the command line; none of ours is a comma.
    return [
        "spm_train", f"--input={input_path}", f"--model_prefix={prefix}", "--model_type=char",
        f"--vocab_size={len(SYMBOLS) + 1}", "--user_defined_symbols=" + ",".join(SYMBOLS),
        "--unk_id=0", "--bos_id=-1", "--eos_id=-1", "--pad_id=-1", "--add_dummy_prefix=false",
        "--normalization_rule_name=identity", "--remove_extra_whitespaces=false", "--minloglevel=2",
    ]


def build_tokenizer(out_model_path):
    """Writes the demo tokenizer (SentencePiece) to out_model_path; returns the command used."""
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "symbols.txt")
        with open(inp, "w") as f:
            for _ in range(200):
                f.write("".join(rng.choice(SYMBOLS) for _ in range(64)) + "\n")
        cmd = spm_command(os.path.join(tmp, "demo"), inp)
        if shutil.which("spm_train"):
            subprocess.run(cmd, check=True)
        else:  # the pip package's trainer takes the same flags
            import sentencepiece as spm
            spm.SentencePieceTrainer.train(" ".join(c for c in cmd[1:]))
        shutil.copy(os.path.join(tmp, "demo.model"), out_model_path)
    return " ".join(shlex.quote(c) for c in cmd)


def selective_copying(n, gen, region=REGION, n_copy=N_COPY):
    """n examples {n, region + 1 + n_copy}: noise with n_copy letters, '|', then the letters in order."""
    pos = torch.rand(n, region, generator=gen).argsort(dim=1)[:, :n_copy].sort(dim=1).values
    data = torch.randint(LETTER0, LETTER0 + COPY_LETTERS, (n, n_copy), generator=gen)
    seq = torch.full((n, region), NOISE, dtype=torch.long).scatter_(1, pos, data)
    return torch.cat([seq, torch.full((n, 1), SEP, dtype=torch.long), data], 1), region + 1, n_copy


def induction_heads(n, gen, length=IH_LEN):
    """n examples {n, length + 1}: letters with '#' then a value somewhere, '#' last, then the value."""
    body = torch.randint(LETTER0, LETTER0 + IH_LETTERS, (n, length - 1), generator=gen)
    p = torch.randint(0, length - 3, (n,), generator=gen)  # trigger at p, value at p + 1 < length - 1
    value = torch.randint(LETTER0, LETTER0 + IH_LETTERS, (n,), generator=gen)
    rows = torch.arange(n)
    body[rows, p] = TRIGGER
    body[rows, p + 1] = value
    return torch.cat([body, torch.full((n, 1), TRIGGER, dtype=torch.long), value[:, None]], 1), length, 1


TASKS = {
    "selective-copying": selective_copying,
    "induction-heads": induction_heads,
}


def sample(task, n, gen, **kw):
    """-> (sequences {n, prompt_len + target_len} int64, prompt_len, target_len)."""
    return TASKS[task](n, gen, **kw)


if __name__ == "__main__":
    import sys
    out = sys.argv[1] if len(sys.argv) > 1 else "demo-tokenizer.model"
    print(build_tokenizer(out))
    g = torch.Generator().manual_seed(1)
    for t in TASKS:
        seq, p, _ = sample(t, 1, g)
        print(t, ids_to_text(seq[0, :p].tolist()), "->", ids_to_text(seq[0, p:].tolist()))
