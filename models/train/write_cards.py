#!/usr/bin/env python3
"""Model cards (README.md) and loss-curve PNGs for the bundled models, rendered from the
training_log.json that train_lm.py / train_demos.py write beside the weights. Runs on plain
Python 3 (matplotlib only for the PNGs), so cards can be re-rendered without a GPU:

  python3 models/train/write_cards.py models/mamba-tinystories-9m models/demos
"""
import json
import os
import sys

REBUILD_LM = """\
```sh
# 1. data + tokenizer (any machine; Debian: apt-get install sentencepiece python3-sentencepiece)
python3 models/train/prepare_data.py all --corpus ../shared/corpus --out .carry/lmdata
# 2. training, export, checks, card (one GPU; needs torch, numpy, sentencepiece; transformers for the check),
#    one command per phase (each later phase continues from the folder the one before wrote)
{commands}
```
Or everything the bundled models were made with, in one command on the GPU machine:
`bash models/train/device_run.sh` (see models/README.md)."""


def plot_curves(path, title, series, ylabel="cross-entropy (nats / token)"):
    """series: [(label, [(step, seconds, value), ...], style)]. Returns False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, pts, style in series:
        if pts:
            ax.plot([p[0] for p in pts], [p[2] for p in pts], style, ms=3, lw=1, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def merge_phases(prior, log, curve_keys, phase):
    """A run continued from an earlier one (--init-from): totals add up, curves are joined (the new
    one shifted by the earlier steps and seconds) and `phases` lists each run's own settings."""
    if not prior:
        log["phases"] = [phase]
        return log
    s0, t0 = prior["steps"], prior["train_seconds"]
    for k in curve_keys:
        log[k] = prior.get(k, []) + [[p[0] + s0, round(p[1] + t0, 1), p[2]] for p in log[k]]
    for k in ("steps", "tokens", "train_seconds"):
        if k in log and k in prior:
            log[k] = log[k] + prior[k]
    first = {"hyper": prior["hyper"], "steps": prior["steps"], "train_seconds": prior["train_seconds"]}
    log["phases"] = prior.get("phases", [first]) + [phase]
    return log


def _phases(log):
    return log.get("phases") or [{"hyper": log["hyper"], "steps": log["steps"], "train_seconds": log["train_seconds"]}]


def _phases_md(log, cmd):
    out = []
    for i, ph in enumerate(_phases(log), 1):
        h = ph["hyper"]
        out.append(f"{i}. " + (f"continued from phase {i - 1}'s shipped weights (fresh optimizer): " if i > 1 else "")
                   + f"{ph['steps']:,} steps, {ph['train_seconds']:.0f} s; " + cmd(h))
    return out


def _load(folder):
    with open(os.path.join(folder, "training_log.json")) as f:
        return json.load(f)


def _size_mb(folder):
    return os.path.getsize(os.path.join(folder, "model.safetensors")) / 1e6


def _hf_line(hf):
    if not hf:
        return "not run"
    if "error" in hf:
        return f"could not run: `{hf['error']}`"
    return (f"max |Δlogit| = {hf['max_abs_diff']:.2e} over {hf['tokens']} tokens (logit range "
            f"{hf['logits_range']:.1f}; argmax agrees on {100 * hf['argmax_agree']:.2f}% of positions)")


def write_lm_card(folder):
    log = _load(folder)
    c, h, d = log["config"], log["hyper"], log["data"]
    name = log["model"]
    tok = d.get("tokens", {})
    weights = d["group_weights"]
    tokens_seen = log["tokens"]
    lines = [
        f"# {name}",
        "",
        f"A {log['parameters'] / 1e6:.1f} M-parameter Mamba-1 language model that writes short, simple English "
        "stories. It is MambaScope's bundled default model: small enough to run at interactive speed on a CPU, "
        "trained from scratch in a few minutes on one GPU. Hugging Face `MambaForCausalLM` layout "
        f"(config.json, model.safetensors in bf16, {_size_mb(folder):.1f} MB), SentencePiece tokenizer.",
        "",
        "```python",
        "from transformers import MambaForCausalLM",
        f'model = MambaForCausalLM.from_pretrained("models/{name}")  # the weights; tokenizer: tokenizer.model',
        "```",
        "",
        "## Architecture",
        "",
        f"Mamba-1: d_model {c['hidden_size']}, {c['num_hidden_layers']} layers, d_inner {c['intermediate_size']}, "
        f"d_state {c['state_size']}, d_conv {c['conv_kernel']}, dt_rank {c['time_step_rank']}, vocabulary "
        f"{c['vocab_size']}, tied input/output embedding, RMSNorm, residual in fp32. "
        f"{log['parameters']:,} parameters.",
        "",
        "## Tokenizer",
        "",
        f"SentencePiece BPE, {c['vocab_size']} pieces, trained on this model's training text (held-out stories "
        "excluded; the simple-story groups repeated 3x so the vocabulary fits them): byte fallback (any UTF-8 text "
        "encodes), identity normalization, no dummy prefix (a text's first word has no leading `▁`, like a word "
        "after a newline), digits split, newline encodes as the byte piece `<0x0A>`. "
        f"`<|endoftext|>` is a user-defined piece (id {c['eos_token_id']}), so it is recognised inside text; it "
        "ends every story in training and is the model's end-of-sequence token (config.json `eos_token_id`; the "
        "SentencePiece model itself defines no bos/eos). No BOS token is used: prompts are encoded as they are.",
        "",
        "```sh",
        d.get("spm_train_command", "(see prepare_data.py)"),
        "```",
        "",
        "## Training data and mix",
        "",
        "The text in `../shared/corpus` (its SOURCES.md gives every file's origin, commit and checksum). Each "
        f"training window of {h['seq']} tokens is drawn from one group with the probability below, at a random "
        "offset, so small groups are oversampled and the long novels downweighted:",
        "",
        "| group | what | training tokens | sampling weight | ≈ passes over the group |",
        "|---|---|---:|---:|---:|",
    ]
    what = {
        "tinystories": "TinyStories stories (held-out ones removed)",
        "readers": "McGuffey's Eclectic Readers 1-4, Peter Rabbit, The Velveteen Rabbit, Fifty Famous Stories Retold, Just So Stories",
        "fairy": "fairy tales: Lang's twelve coloured Fairy Books, Grimm, Andersen, Jacobs (English, More English, Celtic, Indian), Japanese Fairy Tales, The Happy Prince, The Book of Dragons, The Arabian Nights",
        "novels": "children's and Victorian/Edwardian novels (the other Gutenberg books)",
        "verse": "Tiny Shakespeare",
    }
    for g, w in weights.items():
        n = tok.get(g, 0)
        passes = tokens_seen * w / n if n else 0
        lines.append(f"| {g} | {what.get(g, g)} | {n:,} | {w:.2f} | {passes:.1f} |")
    books = {}
    for s in d.get("sources", []) if isinstance(d.get("sources"), list) else []:
        books.setdefault(s["group"], []).append(s)
    lines += [
        "",
        f"Held out (never trained on, never used for any choice): {d['heldout']['stories']} TinyStories stories, "
        f"every {d['heldout']['every']}th story of `{d['heldout']['file']}` — shipped here as "
        "`heldout-tinystories.txt`. Validation (picks the best checkpoint): "
        f"{d['val']['stories']} stories, every {d['val']['every']}th of `{d['val']['file']}`.",
        "",
        "### Licences and attributions",
        "",
        "- **TinyStories** (Ronen Eldan and Yuanzhi Li, *TinyStories: How Small Can Language Models Be and Still "
        "Speak Coherent English?*, 2023; dataset `roneneldan/TinyStories`), stories generated by GPT-3.5/GPT-4, "
        "licensed **CDLA-Sharing-1.0**. Taken from the GitHub copies in `maxme1/tiny-stories` "
        "(frontend/src/assets/tiny-stories.json, 3,000 stories) and `ToonTalk/jlens-tinystories` "
        "(out/corpora/tinystories_1000.json, first 1,000 stories of the V1 train split). The file "
        "`heldout-tinystories.txt` in this folder is TinyStories data and is redistributed under CDLA-Sharing-1.0; "
        "the trained weights are a result of computation on the data, which that licence does not restrict.",
        "- **Tiny Shakespeare** (compiled by Andrej Karpathy, `karpathy/char-rnn`, MIT): Shakespeare's text is in "
        "the public domain.",
        "- **Project Gutenberg books** via the GITenberg mirrors on GitHub: public domain in the USA. All Project "
        "Gutenberg headers, licences and references were removed (so the PG trademark licence does not apply). "
        "Some GITenberg metadata files say `CC BY-NC`: that refers to their commissioned cover art, which is not "
        "used. Translations kept as listed public domain by Project Gutenberg: Pinocchio (tr. Carol Della Chiesa), "
        "Heidi, Grimms' Fairy Tales (tr. Taylor/Edwardes), Andersen's Fairy Tales. The books:",
    ]
    for g in ("readers", "fairy", "novels"):
        works = [s.get("work", s["file"]) for s in books.get(g, [])]
        if works:
            lines.append(f"  - *{g}*: " + "; ".join(works) + ".")
    lines += [
        "",
        "## Training",
        "",
        f"Own PyTorch implementation (models/train/mamba_torch.py: HF parameterization and init — A_log = log(1..N), "
        "Δ bias = softplus⁻¹ of log-uniform Δ in [1e-3, 1e-1], D = 1; embedding N(0, 0.02); out_proj scaled by "
        f"1/√n_layer), bf16 autocast with the selective scan in fp32. AdamW (β 0.9/0.95, weight decay {h['wd']} on "
        f"matrices), linear warm-up then a cosine over a fixed wall-clock time, gradient clip 1.0, batch "
        f"{h['batch']} x {h['seq']} tokens. The validation loss is measured every {h['eval_every']:.0f} s and the "
        "best weights are kept. Phases:",
        "",
        *_phases_md(log, lambda p: f"peak LR {p['lr']}, {p['warmup']} warm-up steps, cosine to {p['min_lr_frac']}x "
                    f"over {p['minutes']} min, seed {p['seed']}."),
        "",
        f"- Device: {log['device']}, torch {log['torch']}.",
        f"- In all: {log['steps']:,} steps, {tokens_seen / 1e6:.1f} M tokens, {log['train_seconds']:.0f} s of "
        "training.",
        f"- Best validation loss of the last phase {log['best_val']['nll']:.4f} at its step "
        f"{log['best_val']['step']:,}; those are the weights shipped.",
        "",
        "The train curve is an exponential moving average (0.9 old, 0.1 new, every 10 steps) of the loss on the "
        "mixed groups, novels included, so it lags at the start and sits above the TinyStories validation loss.",
        "",
        "![loss curve](loss.png)",
        "",
        "## Evaluation",
        "",
        f"**Held-out perplexity: {log['heldout']['perplexity']:.2f}** (mean NLL {log['heldout']['nll']:.4f} nats "
        f"per token) on `heldout-tinystories.txt` ({log['heldout']['stories']} stories, "
        f"{log['heldout']['tokens']:,} scored tokens). Definition: the whole file is encoded as one text "
        "(`<|endoftext|>` lines parsed as the special piece), run through the model as one sequence, and every "
        "token after the first is scored; fp32 arithmetic on the shipped bf16 weights. This is what "
        "`mambascope-cli eval` on that file should reproduce.",
        "",
        f"**Same logits as transformers**: `MambaForCausalLM` (transformers' slow path, fp32, CPU) loaded from this "
        f"folder vs models/train/mamba_torch.py on the same weights: {_hf_line(log.get('hf_check'))}.",
        "",
        "## Samples",
        "",
        f"Prompt `{log['samples']['prompt']}`, temperature {log['samples']['temperature']}, top-k "
        f"{log['samples']['top_k']}, seed {log['samples']['seed']}, up to 300 new tokens or `<|endoftext|>` "
        "(PyTorch, not cherry-picked: these are the first samples drawn):",
        "",
    ]
    for i, t in enumerate(log["samples"]["texts"], 1):
        lines += [f"**{i}.**", "", "> " + t.strip().replace("\n", "\n>\n> "), ""]
    lines += ["Greedy (temperature 0):", "", "> " + log["samples"]["greedy"].strip().replace("\n", "\n>\n> "), ""]
    rebuild = []
    for i, ph in enumerate(_phases(log), 1):
        p = ph["hyper"]
        flags = f"--minutes {p['minutes']} --lr {p['lr']} --warmup {p['warmup']} --seed {p['seed']}"
        if i > 1:
            flags += f" --init-from models/{name}"
        rebuild.append(f"python3 models/train/train_lm.py --data .carry/lmdata --out models/{name} {flags}")
    lines += [
        "## Limitations",
        "",
        "A few million tokens of stories cannot teach much: plots wander, names and facts drift within a story, "
        "and prompts far from children's stories get children's-story answers. It knows nothing useful and should "
        "not be used for anything but exploring how a Mamba model works. The training run is timed by the wall "
        "clock, so a rebuild on another GPU takes a different number of steps and gives similar, not identical, "
        "weights.",
        "",
        "## Rebuild",
        "",
        REBUILD_LM.format(commands="\n".join(rebuild)),
        "",
    ]
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("\n".join(lines))


TASK_TEXT = {
    "selective-copying": (
        "Selective Copying (Mamba paper, section 4.1): a region of {region} tokens is noise (`.`) except for "
        "{n_copy} letters (from `a`..`{last}`) at random positions; after the separator `|` the model must write "
        "the letters in order. An LTI model cannot solve it well: its convolution kernel is fixed, so it cannot "
        "ignore noise whose position changes from one example to the next; a selective model makes Δ large on "
        "letters (write them into the state) and small on noise (keep the state)."),
    "induction-heads": (
        "Induction Heads (Mamba paper, section 4.1): {length} tokens of random letters (`a`..`{last}`) in which a "
        "trigger `#` occurs once, followed by a value letter; the sequence ends with `#` and the model must answer "
        "the value. Trained at {length} tokens; also measured at 4x that length (extrapolation)."),
}


def write_demo_card(folder):
    log = _load(folder)
    c, h, tp = log["config"], log["hyper"], log["task_params"]
    task, variant = log["task"], log["variant"]
    letters = tp.get("copy_letters", tp.get("letters", 16))
    desc = TASK_TEXT[task].format(last=chr(ord("a") + letters - 1), **tp)
    acc = log["accuracy"]
    lines = [
        f"# {log['model']}",
        "",
        f"A {'selective (input-dependent Δ, B, C)' if variant == 'selective' else 'time-invariant (LTI, S4-like)'} "
        f"Mamba-1 model, {log['parameters']:,} parameters, trained on one synthetic task. Its pair, "
        f"`{task}-{'lti' if variant == 'selective' else 'selective'}`, has the same size and training.",
        "",
        desc,
        "",
        "## Results",
        "",
        f"- Greedy accuracy on `eval.jsonl` ({acc['examples']} examples, measured in PyTorch on the shipped bf16 "
        f"weights in fp32): **{100 * acc['token_accuracy']:.1f}% of answer tokens**, "
        f"{100 * acc['exact_match']:.1f}% of examples entirely right.",
    ]
    if "accuracy_at_4x_length" in log:
        a4 = log["accuracy_at_4x_length"]
        lines.append(f"- At 4x the training length ({a4['prompt_len']} tokens): {100 * a4['token_accuracy']:.1f}% "
                     f"({a4['examples']} examples, other seed).")
    chance = 1.0 / letters
    lines.append(f"- Chance: {100 * chance:.1f}%.")
    if log.get("hf_check"):
        lines.append(f"- Same logits as transformers' `MambaForCausalLM` (fp32, CPU): {_hf_line(log['hf_check'])}.")
    lines += ["", "Mean Δ (softplus output, averaged over channels) by input symbol, per layer, over 64 eval prompts:", ""]
    syms = sorted({s for layer in log["delta_by_symbol"] for s in layer if not s.startswith("_")})
    lines.append("| layer | " + " | ".join(f"`{s}`" for s in syms) + " |")
    lines.append("|---|" + "---:|" * len(syms))
    for i, layer in enumerate(log["delta_by_symbol"]):
        lines.append(f"| {i} | " + " | ".join(f"{layer.get(s, float('nan')):.3f}" for s in syms) + " |")
    for i, layer in enumerate(log["delta_by_symbol"]):
        if "_channels_letters_over_noise_gt3" in layer:
            lines.append(f"\nLayer {i}: {layer['_channels_letters_over_noise_gt3']} of {c['intermediate_size']} channels "
                         f"have a mean Δ on letters more than 3x their mean Δ on noise (largest ratio "
                         f"{layer['_max_ratio']}).")
    lines += [
        "",
        "## Files",
        "",
        "- `config.json`, `model.safetensors` (bf16), Hugging Face Mamba layout"
        + (" plus the LTI tensors described in models/README.md (`\"mambascope_lti\": true`; transformers cannot "
           "run this variant)." if variant == "lti" else "."),
        "- `tokenizer.model`: SentencePiece, one piece per symbol: `<unk>`=0, then `" + "`, `".join(".|#") +
        "`, `a`..`p` = 1..19 (models/train/tasks.py). The embedding has 32 rows; ids 20..31 are unused.",
        "- `eval.jsonl`: one example a line, `{\"prompt_ids\": [...], \"target_ids\": [...]}`; the answer is "
        "`target_ids`, generated greedily after `prompt_ids` (`mambascope-cli eval --task eval.jsonl`).",
        "- `demo_prompt.txt`: the first eval prompt as text, for the app's Demos menu.",
        "",
        "## Training",
        "",
        f"d_model {c['hidden_size']}, {c['num_hidden_layers']} layers, d_state {c['state_size']}, d_inner "
        f"{c['intermediate_size']}, vocabulary {c['vocab_size']}. Loss on the answer tokens only. AdamW (β 0.9/0.98, "
        f"weight decay {h['weight_decay']} on matrices), linear warm-up then a cosine to 0.1x of the peak LR over a "
        f"fixed wall-clock time, batch {h['batch']} fresh examples a step; on {log['device']}. Phases:",
        "",
        *_phases_md(log, lambda p: f"peak LR {p['lr']}, {p['warmup']} warm-up steps, {p['seconds']:.0f} s, "
                    f"data seed {p['seed']}."),
        "",
        f"In all {log['steps']:,} steps ({log['train_seconds']:.0f} s); final answer-token loss {log['final_loss']:.4f}.",
        "",
        "![loss curve](loss.png)",
        "",
        "## Rebuild",
        "",
        "```sh",
    ]
    for i, ph in enumerate(_phases(log), 1):
        p = ph["hyper"]
        lines.append(f"python3 models/train/train_demos.py --out-root models/demos --tasks {task} --variants {variant} "
                     f"--seconds {p['seconds']:.0f} --lr {p['lr']} --warmup {p['warmup']} --seed {p['seed']}"
                     + (" --init-root models/demos" if i > 1 else ""))
    lines += ["```", ""]
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("\n".join(lines))


def write_demos_summary(root):
    rows = []
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name, "training_log.json")
        if os.path.exists(p):
            log = json.load(open(p))
            a4 = log.get("accuracy_at_4x_length", {}).get("token_accuracy")
            rows.append(f"| `{name}` | {log['parameters']:,} | {100 * log['accuracy']['token_accuracy']:.1f}% | "
                        f"{100 * log['accuracy']['exact_match']:.1f}% | " + (f"{100 * a4:.1f}%" if a4 is not None else "—")
                        + f" | {log['steps']:,} |")
    with open(os.path.join(root, "RESULTS.md"), "w") as f:
        f.write("# Demo pairs: accuracy measured in PyTorch\n\n"
                "Greedy answers on each folder's eval.jsonl (shipped bf16 weights, fp32 arithmetic). "
                "See each folder's README.md.\n\n"
                "| model | parameters | answer tokens right | examples entirely right | at 4x length | steps |\n"
                "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n")


def main(paths):
    for p in paths:
        if os.path.exists(os.path.join(p, "training_log.json")):
            log = _load(p)
            if "task" in log:
                write_demo_card(p)
            else:
                write_lm_card(p)
        elif os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                sub = os.path.join(p, name)
                if os.path.exists(os.path.join(sub, "training_log.json")):
                    write_demo_card(sub)
            write_demos_summary(p)


if __name__ == "__main__":
    main(sys.argv[1:])
