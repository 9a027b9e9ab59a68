#!/usr/bin/env python3
"""Trains the default story model (models/mamba-tinystories-*) on the output of prepare_data.py.

Each training window is drawn from one data group with the probability in meta.json's
group_weights (the mix), at a uniformly random offset. The learning rate follows the wall clock:
linear warm-up, then a cosine over --minutes, so a run fits its time slot on any GPU. The
validation stories (never trained on) are scored every --eval-every seconds and the best weights
are kept; the test stories (heldout-tinystories.txt, never trained on and never used for choices)
give the perplexity in the model card. Then: export in the HF layout (bf16), the check against
transformers' MambaForCausalLM, samples, the loss curve, training_log.json and the model card.

  python3 models/train/train_lm.py --data .carry/lmdata --out models/mamba-tinystories-9m
  python3 models/train/train_lm.py --data .carry/lmdata --out /tmp/smoke --smoke   # seconds, CPU ok
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_export  # noqa: E402
import mamba_torch as mt  # noqa: E402
import write_cards  # noqa: E402

EOT = "<|endoftext|>"
PROMPT = "Once upon a time"


def load_groups(data, meta, device):
    import numpy as np

    groups, weights = [], []
    for g, w in meta["group_weights"].items():
        if w <= 0:
            continue
        arr = np.fromfile(os.path.join(data, f"train-{g}.bin"), dtype="<u2").astype(np.int64)
        groups.append(torch.from_numpy(arr).to(device))
        weights.append(w)
    return groups, torch.tensor(weights, dtype=torch.float64)


def sample_batch(groups, weights, batch, seq, gen, device):
    which = torch.multinomial(weights, batch, replacement=True, generator=gen)
    rows = []
    ar = torch.arange(seq + 1, device=device)
    for gi in range(len(groups)):
        n = int((which == gi).sum())
        if n == 0:
            continue
        toks = groups[gi]
        starts = torch.randint(0, toks.numel() - seq - 1, (n,), generator=gen).to(device)
        rows.append(toks[starts[:, None] + ar])
    xy = torch.cat(rows)[torch.randperm(batch, generator=gen).to(device)]
    return xy[:, :-1], xy[:, 1:]


@torch.no_grad()
def sequence_nll(model, ids, device, max_len=None, autocast=False):
    """Mean next-token NLL over one long sequence (the first token is context only)."""
    if max_len:
        ids = ids[:max_len]
    x = torch.tensor(ids, dtype=torch.long, device=device)[None]
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x[:, :-1])
    nll = F.cross_entropy(logits.float()[0], x[0, 1:], reduction="sum").item()
    return nll / (x.shape[1] - 1), x.shape[1] - 1


@torch.no_grad()
def generate(model, sp, prompt, n, max_new, temperature, top_k, eot_id, device, seed):
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.tensor([sp.encode(prompt)] * n, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for _ in range(max_new):
        logits = model(ids)[:, -1].float()
        if temperature <= 0:
            nxt = logits.argmax(-1)
        else:
            logits = logits / temperature
            if top_k:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=g)[:, 0].to(device)
        nxt = torch.where(done, torch.full_like(nxt, eot_id), nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        done |= nxt == eot_id
        if bool(done.all()):
            break
    out = []
    for row in ids.tolist():
        if eot_id in row:
            row = row[: row.index(eot_id)]
        out.append(sp.decode(row))
    return out


def lr_at(step, elapsed, args):
    warm = min(1.0, (step + 1) / args.warmup)
    frac = min(1.0, elapsed / (args.minutes * 60))
    return args.lr * warm * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "A_log" not in name and "_lti" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=".carry/lmdata")
    ap.add_argument("--out", required=True)
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--n-layer", type=int, default=8)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--minutes", type=float, default=4.0, help="training time (wall clock)")
    ap.add_argument("--eval-every", type=float, default=15.0, help="seconds between validations")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--init-from", default=None, help="continue from this model folder's weights (and log)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, a few seconds: checks the pipeline")
    args = ap.parse_args()
    if args.smoke:
        args.d_model, args.n_layer, args.seq, args.batch = 64, 2, 64, 8
        args.minutes, args.eval_every, args.warmup, args.samples = 0.1, 2.0, 5, 2

    import sentencepiece as spm

    t_start = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    with open(os.path.join(args.data, "meta.json")) as f:
        meta = json.load(f)
    tok_path = os.path.join(args.data, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=tok_path)
    eot = sp.piece_to_id(EOT)
    groups, weights = load_groups(args.data, meta, device)
    val_ids = sp.encode(open(os.path.join(args.data, "val-tinystories.txt"), encoding="utf-8").read())
    test_text = open(os.path.join(args.data, "heldout-tinystories.txt"), encoding="utf-8").read()
    test_ids = sp.encode(test_text)
    val_max = 2000 if args.smoke else None

    cfg = mt.MambaConfig(vocab_size=sp.get_piece_size(), d_model=args.d_model, n_layer=args.n_layer,
                         d_state=args.d_state, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    model = mt.MambaLM(cfg)
    prior = None
    if args.init_from:
        model.load_state_dict(hf_export.load_folder(args.init_from).state_dict())
        prior_path = os.path.join(args.init_from, "training_log.json")
        prior = json.load(open(prior_path)) if os.path.exists(prior_path) else None
        print(f"continuing from {args.init_from}", flush=True)
    model = model.to(device)
    n_params = model.num_params()
    print(f"model: {n_params / 1e6:.2f} M parameters, d_model {cfg.d_model}, {cfg.n_layer} layers, "
          f"vocab {cfg.vocab_size}, device {device}", flush=True)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if device.type == "cuda" else {}))
    gen = torch.Generator().manual_seed(args.seed)
    use_amp = device.type == "cuda"

    train_curve, val_curve = [], []
    best = (float("inf"), None, 0)
    step, tokens, ema = 0, 0, None
    t0 = time.time()
    next_eval = 0.0
    while True:
        elapsed = time.time() - t0
        if elapsed >= next_eval or elapsed >= args.minutes * 60:
            model.eval()
            vl, _ = sequence_nll(model, val_ids, device, max_len=val_max, autocast=use_amp)
            model.train()
            val_curve.append((step, round(elapsed, 1), vl))
            if vl < best[0]:
                best = (vl, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
            print(f"step {step:6d}  {elapsed:6.1f}s  tokens {tokens / 1e6:7.2f}M  train {ema if ema else float('nan'):.3f}"
                  f"  val {vl:.3f}  lr {lr_at(step, elapsed, args):.2e}", flush=True)
            next_eval = elapsed + args.eval_every
            if elapsed >= args.minutes * 60:
                break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, elapsed, args)
        x, y = sample_batch(groups, weights, args.batch, args.seq, gen, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        lv = loss.item() if step % 10 == 0 or step < 10 else None
        if lv is not None:
            ema = lv if ema is None else 0.9 * ema + 0.1 * lv
            train_curve.append((step, round(time.time() - t0, 1), ema))
    train_seconds = time.time() - t0
    model.load_state_dict(best[1])
    print(f"trained {step} steps, {tokens / 1e6:.1f} M tokens in {train_seconds:.0f} s; best val {best[0]:.4f} at step {best[2]}", flush=True)

    # Export (bf16), then measure everything on the exported weights, as the engine will see them.
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    hf_export.save_folder(model, args.out, tok_path, eos_token=EOT)
    shutil.copy(os.path.join(args.data, "heldout-tinystories.txt"), os.path.join(args.out, "heldout-tinystories.txt"))
    shipped = hf_export.load_folder(args.out).to(device)
    test_nll, test_tokens = sequence_nll(shipped, test_ids, device, max_len=val_max)
    val_nll, _ = sequence_nll(shipped, val_ids, device, max_len=val_max)
    print(f"held-out test: {test_tokens} tokens, NLL {test_nll:.4f}, perplexity {math.exp(test_nll):.3f}", flush=True)

    hf = None
    try:
        g = torch.Generator().manual_seed(7)
        check_ids = torch.stack([torch.tensor(test_ids[:128]), torch.randint(0, cfg.vocab_size, (128,), generator=g)])
        hf = hf_export.check_against_hf(args.out, check_ids)
        print(f"transformers MambaForCausalLM vs ours (fp32, CPU): max abs diff {hf['max_abs_diff']:.3e} "
              f"(logit range {hf['logits_range']:.1f}, argmax agree {hf['argmax_agree']:.4f})", flush=True)
    except Exception as e:  # keep the model even if the check cannot run; the log says why
        hf = {"error": f"{type(e).__name__}: {e}"}
        print("HF check failed:", hf["error"], flush=True)

    samples = generate(shipped, sp, PROMPT, args.samples, 20 if args.smoke else 300, 0.8, 40, eot, device, args.seed)
    greedy = generate(shipped, sp, PROMPT, 1, 20 if args.smoke else 200, 0.0, 0, eot, device, args.seed)[0]
    for s in samples:
        print("---\n" + s, flush=True)

    log = {
        "model": os.path.basename(os.path.normpath(args.out)),
        "parameters": n_params,
        "config": hf_export.hf_config(cfg),
        "hyper": {k: v for k, v in vars(args).items() if k not in ("data", "out", "init_from")},
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "steps": step, "tokens": tokens, "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "best_val": {"nll": best[0], "step": best[2]},
        "val_shipped_nll": val_nll,
        "heldout": {"file": "heldout-tinystories.txt", "stories": meta["heldout"]["stories"], "tokens": test_tokens,
                    "nll": test_nll, "perplexity": math.exp(test_nll)},
        "hf_check": hf,
        "samples": {"prompt": PROMPT, "temperature": 0.8, "top_k": 40, "seed": args.seed, "texts": samples,
                    "greedy": greedy},
        "data": {k: meta[k] for k in ("group_weights", "tokens", "groups", "heldout", "val", "spm_train_command", "sources") if k in meta},
        "train_curve": train_curve, "val_curve": val_curve,
    }
    phase = {"hyper": log["hyper"], "steps": step, "tokens": tokens, "train_seconds": round(train_seconds, 1),
             "init_from": args.init_from}
    log = write_cards.merge_phases(prior, log, ["train_curve", "val_curve"], phase)
    train_curve, val_curve = log["train_curve"], log["val_curve"]
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    write_cards.plot_curves(os.path.join(args.out, "loss.png"), f"{log['model']}: {n_params / 1e6:.1f} M parameters", [
        ("train (mixed groups, smoothed)", train_curve, "-"),
        ("validation: 100 held-out TinyStories", val_curve, "o-")])
    write_cards.write_lm_card(args.out)
    print(f"done in {time.time() - t_start:.0f} s: {args.out}", flush=True)


if __name__ == "__main__":
    main()
