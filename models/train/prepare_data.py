#!/usr/bin/env python3
"""Data preparation for the default story model: the mix, the held-out split, the tokenizer.

Three steps, each a sub-command (``all`` runs them in order):

  split      reads ../shared/corpus, assigns every file to a group (tinystories, readers, fairy,
             novels, verse), sets aside TinyStories stories that are never trained on (a test set
             for the perplexity in the model card, and a validation set for picking the best
             checkpoint), and writes one training text per group plus the tokenizer's input.
  tokenizer  trains the SentencePiece model with Debian's ``spm_train`` (the exact command is
             stored in meta.json and printed).
  tokenize   encodes each group's text into a flat uint16 token file with the ``sentencepiece``
             Python module (Debian: python3-sentencepiece; pip: sentencepiece).

The mix is applied at sampling time (train_lm.py draws each training window from a group with the
probability in GROUP_WEIGHTS), so the token files hold every training token exactly once.
Runs on plain Python 3 (no numpy). Usage:

  python3 models/train/prepare_data.py all --corpus ../shared/corpus --out .carry/lmdata

Outputs in --out (what training needs: the token files, the tokenizer, the held-out and validation
stories, meta.json); the large intermediate texts go to --work (default: <out>-work).
"""
import argparse
import array
import hashlib
import json
import os
import shlex
import subprocess
import sys

EOT = "<|endoftext|>"
VOCAB_SIZE = 4096

# Which group each corpus file belongs to. Anything not listed is a novel.
READERS = {
    "mcguffeys-first-eclectic-reader-revised-edition.txt", "mcguffeys-second-eclectic-reader.txt",
    "mcguffeys-third-eclectic-reader.txt", "mcguffeys-fourth-eclectic-reader.txt",
    "the-tale-of-peter-rabbit.txt", "the-velveteen-rabbit.txt", "fifty-famous-stories-retold.txt",
    "just-so-stories.txt",
}
FAIRY_WORDS = ("fairy", "happy-prince", "book-of-dragons", "arabian-nights")
VERSE = {"tiny-shakespeare.txt"}

# Probability that a training window is drawn from each group. TinyStories is ~10% of the corpus
# bytes but gets 35% of the windows; the readers (1%) get 10%; the long Victorian/Edwardian
# novels are ~52% of the bytes and get 22%. Tiny Shakespeare (verse, archaic) is kept as a trace.
GROUP_WEIGHTS = {"tinystories": 0.35, "readers": 0.10, "fairy": 0.30, "novels": 0.22, "verse": 0.03}
# How many times each group's lines are repeated in the tokenizer's input, so the vocabulary
# favours the simple-story register too.
SPM_REPEATS = {"tinystories": 3, "readers": 3, "fairy": 1, "novels": 1, "verse": 0}

# Held-out TinyStories: every 5th story of tinystories-01.txt (the V1 train split, 998 stories)
# is a test story (200), every 30th of tinystories-00.txt a validation story (100).
TEST_FILE, TEST_EVERY = "tinystories-01.txt", 5
VAL_FILE, VAL_EVERY = "tinystories-00.txt", 30


def group_of(name):
    if name.startswith("tinystories-"):
        return "tinystories"
    if name in READERS:
        return "readers"
    if name in VERSE:
        return "verse"
    if any(w in name for w in FAIRY_WORDS):
        return "fairy"
    return "novels"


def read_stories(path):
    text = open(path, encoding="utf-8").read()
    return [s.strip("\n") for s in text.split(EOT) if s.strip()]


def doc(text):
    # The corpus' own TinyStories format: a document, then a line holding <|endoftext|>.
    return text.rstrip("\n") + "\n" + EOT + "\n"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_rows(corpus):
    """file -> {repo, work} from the corpus' SOURCES.md tables (for the model card's credits)."""
    rows = {}
    path = os.path.join(corpus, "SOURCES.md")
    if not os.path.exists(path):
        return rows
    header = None
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| file |"):
            header = cells
        elif header and line.startswith("| ") and cells[0].endswith(".txt") and len(cells) >= len(header):
            d = dict(zip(header, cells))
            rows[cells[0]] = {"repo": d.get("source repo", ""), "work": d.get("work (PG #)", d.get("dataset", "")),
                              "licence": d.get("licence", d.get("metadata rights", ""))}
    return rows


def cmd_split(args):
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    files = sorted(f for f in os.listdir(args.corpus) if f.endswith(".txt"))
    groups = {g: [] for g in GROUP_WEIGHTS}
    test, val = [], []
    sources = []
    credits = source_rows(args.corpus)
    for name in files:
        path = os.path.join(args.corpus, name)
        g = group_of(name)
        sources.append({"file": name, "group": g, "sha256": sha256_file(path), **credits.get(name, {})})
        if g == "tinystories":
            for i, story in enumerate(read_stories(path)):
                if name == TEST_FILE and i % TEST_EVERY == 0:
                    test.append(story)
                elif name == VAL_FILE and i % VAL_EVERY == 0:
                    val.append(story)
                else:
                    groups[g].append(story)
        else:
            groups[g].append(open(path, encoding="utf-8").read().strip("\n"))
    for g, docs in groups.items():
        with open(os.path.join(args.work, f"train-{g}.txt"), "w", encoding="utf-8") as f:
            f.write("".join(doc(d) for d in docs))
    for fname, stories in (("heldout-tinystories.txt", test), ("val-tinystories.txt", val)):
        with open(os.path.join(args.out, fname), "w", encoding="utf-8") as f:
            f.write("".join(doc(s) for s in stories))
    # The tokenizer reads one sentence per line: paragraphs are lines already.
    with open(os.path.join(args.work, "spm-input.txt"), "w", encoding="utf-8") as f:
        for g, docs in groups.items():
            lines = [ln for d in docs for ln in d.split("\n") if ln.strip()]
            for _ in range(SPM_REPEATS[g]):
                f.write("\n".join(lines) + "\n")
    meta = {
        "groups": {g: {"docs": len(d), "chars": sum(len(x) for x in d)} for g, d in groups.items()},
        "group_weights": GROUP_WEIGHTS,
        "spm_repeats": SPM_REPEATS,
        "heldout": {"file": TEST_FILE, "every": TEST_EVERY, "stories": len(test)},
        "val": {"file": VAL_FILE, "every": VAL_EVERY, "stories": len(val)},
        "sources": sources,
    }
    write_meta(args.out, meta)
    print(json.dumps(meta["groups"], indent=1))
    print(f"held out {len(test)} test stories, {len(val)} validation stories")


def spm_command(out, work):
    return [
        "spm_train", f"--input={os.path.join(work, 'spm-input.txt')}",
        f"--model_prefix={os.path.join(out, 'tokenizer')}", f"--vocab_size={VOCAB_SIZE}",
        "--model_type=bpe", "--byte_fallback=true", "--character_coverage=0.9995",
        "--normalization_rule_name=identity", "--remove_extra_whitespaces=false",
        "--add_dummy_prefix=false", "--split_digits=true", f"--user_defined_symbols={EOT}",
        "--unk_id=0", "--bos_id=-1", "--eos_id=-1", "--pad_id=-1",
        "--input_sentence_size=2000000", "--shuffle_input_sentence=true",
        "--max_sentence_length=16384", "--num_threads=2", "--minloglevel=1",
    ]


def cmd_tokenizer(args):
    cmd = spm_command(args.out, args.work)
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)
    meta = read_meta(args.out)
    meta["spm_train_command"] = " ".join(shlex.quote(c) for c in cmd)
    meta["tokenizer_sha256"] = sha256_file(os.path.join(args.out, "tokenizer.model"))
    write_meta(args.out, meta)


def cmd_tokenize(args):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.out, "tokenizer.model"))
    assert sp.get_piece_size() <= 65535
    eot = sp.piece_to_id(EOT)
    meta = read_meta(args.out)
    meta["eot_id"] = eot
    meta["vocab_size"] = sp.get_piece_size()
    tokens = {}
    for g in GROUP_WEIGHTS:
        text = open(os.path.join(args.work, f"train-{g}.txt"), encoding="utf-8").read()
        # Documents are encoded one by one (same ids as encoding the whole file: a document
        # ends in "\n<|endoftext|>\n", and neither piece merges across that boundary).
        docs = [d + EOT + "\n" for d in text.split(EOT + "\n") if d]
        ids = array.array("H")
        for piece_ids in sp.encode(docs):
            ids.extend(piece_ids)
        if sys.byteorder != "little":
            ids.byteswap()
        with open(os.path.join(args.out, f"train-{g}.bin"), "wb") as f:
            ids.tofile(f)
        tokens[g] = len(ids)
        print(f"{g}: {len(ids)} tokens, {len(text) / max(1, len(ids)):.2f} chars/token", flush=True)
    meta["tokens"] = tokens
    write_meta(args.out, meta)


def read_meta(out):
    with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
        return json.load(f)


def write_meta(out, meta):
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["split", "tokenizer", "tokenize", "all"])
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "corpus"))
    ap.add_argument("--out", default=".carry/lmdata")
    ap.add_argument("--work", default=None, help="intermediate texts (default: <out>-work)")
    args = ap.parse_args()
    args.work = args.work or args.out.rstrip("/") + "-work"
    steps = ["split", "tokenizer", "tokenize"] if args.step == "all" else [args.step]
    for s in steps:
        {"split": cmd_split, "tokenizer": cmd_tokenizer, "tokenize": cmd_tokenize}[s](args)


if __name__ == "__main__":
    main()
