#!/usr/bin/env python3
"""Trains the demo pairs: for Selective Copying and Induction Heads (tasks.py), a selective Mamba
and an LTI one of the same size, each for --seconds of wall clock. Writes, per model,
models/demos/<task>-<variant>/: the HF-layout folder (config.json, model.safetensors,
tokenizer.model, tokenizer_config.json), eval.jsonl (the fixed test examples), demo_prompt.txt,
training_log.json, loss.png and README.md.

Accuracy is measured the way the engine's `mambascope-cli eval --task eval.jsonl` does: greedy
generation of len(target_ids) tokens after prompt_ids, compared token by token.

  python3 models/train/train_demos.py --out-root models/demos
  python3 models/train/train_demos.py --out-root /tmp/demos --smoke
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_export  # noqa: E402
import mamba_torch as mt  # noqa: E402
import tasks  # noqa: E402
import write_cards  # noqa: E402

EVAL_SEED = 20231201  # eval.jsonl examples; training draws from --seed
N_EVAL = 500
LONG_IH = 4 * tasks.IH_LEN


@torch.no_grad()
def greedy_accuracy(model, seqs, p_len, t_len, device, bs=500):
    """Token accuracy and exact-match rate of greedy continuation, as the engine's eval does."""
    correct, exact = 0, 0
    for i in range(0, seqs.shape[0], bs):
        s = seqs[i:i + bs].to(device)
        ids = s[:, :p_len]
        for _ in range(t_len):
            nxt = model(ids)[:, -1].argmax(-1)
            ids = torch.cat([ids, nxt[:, None]], 1)
        ok = ids[:, p_len:] == s[:, p_len:]
        correct += int(ok.sum())
        exact += int(ok.all(1).sum())
    n = seqs.shape[0]
    return {"token_accuracy": correct / (n * t_len), "exact_match": exact / n, "examples": n}


@torch.no_grad()
def delta_by_token(model, seqs, p_len, device):
    """Per layer: mean Δ (over channels and positions) on each symbol of the prompts; and, where the
    prompts hold noise, how many channels have a mean Δ on letters more than 3x that on noise."""
    ids = seqs[:, :p_len].to(device)
    x = model.backbone.embeddings(ids)
    out = []
    for layer in model.backbone.layers:
        d = layer.mixer.probe_delta(layer.norm(x))  # {b, L, d_inner}
        dm = d.mean(-1)
        per = {tasks.ids_to_text([sym]): round(dm[ids == sym].mean().item(), 5) for sym in sorted(set(ids.flatten().tolist()))}
        if bool((ids == tasks.NOISE).any()):
            ratio = d[ids >= tasks.LETTER0].mean(0) / d[ids == tasks.NOISE].mean(0)  # {d_inner}
            per["_channels_letters_over_noise_gt3"] = int((ratio > 3).sum())
            per["_max_ratio"] = round(ratio.max().item(), 1)
        out.append(per)
        x = layer(x)
    return out


def train_one(task, variant, args, device, tok_path):
    torch.manual_seed(args.seed)
    cfg = mt.MambaConfig(vocab_size=tasks.VOCAB_SIZE, d_model=args.d_model, n_layer=args.n_layer, d_state=16,
                         lti=(variant == "lti"), bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = mt.MambaLM(cfg)
    prior = None
    if args.init_root:
        src = os.path.join(args.init_root, f"{task}-{variant}")
        model.load_state_dict(hf_export.load_folder(src).state_dict())
        prior = json.load(open(os.path.join(src, "training_log.json")))
        print(f"  {task}-{variant}: continuing from {src}", flush=True)
    model = model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "A_log" not in n and "_lti" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "A_log" not in n and "_lti" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(args.seed)
    eval_seqs, p_len, t_len = tasks.sample(task, args.n_eval, torch.Generator().manual_seed(EVAL_SEED))
    curve, step, ema, t0 = [], 0, None, time.time()
    budget = args.seconds
    while True:
        elapsed = time.time() - t0
        if elapsed >= budget:
            break
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        for g in opt.param_groups:
            g["lr"] = lr
        seqs, p, t = tasks.sample(task, args.batch, gen)
        seqs = seqs.to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(seqs[:, :-1])
        # Only the answer tokens are scored: logits at p-1 .. p+t-2 predict tokens p .. p+t-1.
        loss = F.cross_entropy(logits[:, p - 1:p + t - 1].float().reshape(-1, cfg.vocab_size), seqs[:, p:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step < 5:
            lv = loss.item()
            ema = lv if ema is None else 0.8 * ema + 0.2 * lv
            curve.append((step, round(time.time() - t0, 1), ema))
        if step % 500 == 0:
            print(f"  {task}-{variant} step {step} {time.time() - t0:.0f}s loss {ema:.4f}", flush=True)
    seconds = time.time() - t0

    folder = os.path.join(args.out_root, f"{task}-{variant}")
    hf_export.save_folder(model, folder, tok_path, eos_token=None)
    shipped = hf_export.load_folder(folder).to(device)  # the bf16 weights, computed in fp32
    acc = greedy_accuracy(shipped, eval_seqs, p_len, t_len, device)
    extra = {}
    if task == "induction-heads":
        long_seqs, lp, lt = tasks.sample(task, args.n_eval, torch.Generator().manual_seed(EVAL_SEED + 1), length=LONG_IH)
        extra["accuracy_at_4x_length"] = dict(greedy_accuracy(shipped, long_seqs, lp, lt, device), prompt_len=lp)
    with open(os.path.join(folder, "eval.jsonl"), "w") as f:
        for row in eval_seqs.tolist():
            f.write(json.dumps({"prompt_ids": row[:p_len], "target_ids": row[p_len:]}) + "\n")
    with open(os.path.join(folder, "demo_prompt.txt"), "w") as f:
        f.write(tasks.ids_to_text(eval_seqs[0, :p_len].tolist()) + "\n")
    hf = None
    if variant == "selective":
        try:
            hf = hf_export.check_against_hf(folder, eval_seqs[:4, :p_len])
        except Exception as e:
            hf = {"error": f"{type(e).__name__}: {e}"}
    log = {
        "model": f"{task}-{variant}", "task": task, "variant": variant,
        "parameters": model.num_params(), "config": hf_export.hf_config(cfg),
        "hyper": {"d_model": args.d_model, "n_layer": args.n_layer, "d_state": 16, "batch": args.batch, "lr": args.lr,
                  "warmup": args.warmup, "seconds": args.seconds, "seed": args.seed, "weight_decay": 0.1},
        "task_params": {"region": tasks.REGION, "n_copy": tasks.N_COPY, "copy_letters": tasks.COPY_LETTERS}
        if task == "selective-copying" else {"length": tasks.IH_LEN, "letters": tasks.IH_LETTERS},
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "steps": step, "train_seconds": round(seconds, 1), "final_loss": ema,
        "accuracy": acc, **extra,
        "delta_by_symbol": delta_by_token(shipped, eval_seqs[:64], p_len, device),
        "hf_check": hf, "eval_seed": EVAL_SEED,
        "prompt_len": p_len, "target_len": t_len, "train_curve": curve,
    }
    phase = {"hyper": log["hyper"], "steps": step, "train_seconds": round(seconds, 1), "init_from": args.init_root}
    log = write_cards.merge_phases(prior, log, ["train_curve"], phase)
    with open(os.path.join(folder, "training_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"{task}-{variant}: {step} steps in {seconds:.0f}s (in all {log['steps']}), loss {ema:.4f}, token accuracy "
          f"{acc['token_accuracy']:.4f}, exact {acc['exact_match']:.4f}" +
          (f", 4x length {extra['accuracy_at_4x_length']['token_accuracy']:.4f}" if extra else "") +
          (f", HF diff {hf.get('max_abs_diff', hf.get('error'))}" if hf else ""), flush=True)
    return log


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-root", default="models/demos")
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demos", "tokenizer.model"))
    ap.add_argument("--tasks", default="selective-copying,induction-heads")
    ap.add_argument("--variants", default="selective,lti")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=50.0, help="training time per model")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init-root", default=None, help="continue from <init-root>/<task>-<variant> (weights, log)")
    ap.add_argument("--n-eval", type=int, default=N_EVAL, help="examples in eval.jsonl")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.batch, args.warmup, args.n_eval = 3.0, 16, 5, 40
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(args.out_root, exist_ok=True)
    tok = os.path.abspath(args.tokenizer)
    if not os.path.exists(tok):
        tasks.build_tokenizer(tok)
    for task in args.tasks.split(","):
        for variant in args.variants.split(","):
            train_one(task, variant, args, device, tok)
            folder = os.path.join(args.out_root, f"{task}-{variant}")
            log = json.load(open(os.path.join(folder, "training_log.json")))
            write_cards.plot_curves(os.path.join(folder, "loss.png"), f"{task}, {variant}",
                                    [("answer-token loss (smoothed)", log["train_curve"], "-")])
            write_cards.write_demo_card(folder)
    write_cards.write_demos_summary(args.out_root)


if __name__ == "__main__":
    main()
