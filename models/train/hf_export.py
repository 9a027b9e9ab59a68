"""Writing and reading model folders in the Hugging Face `MambaForCausalLM` layout, and the check
that transformers computes the same logits as mamba_torch.py from the same folder.

A folder: config.json, model.safetensors (bf16 by default; the tied lm_head is not stored, as
save_pretrained does), tokenizer.model (SentencePiece), tokenizer_config.json.
"""
import json
import os
import shutil
import struct

import torch

from mamba_torch import MambaConfig, MambaLM

_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
_FROM_ST = {v: k for k, v in _DTYPES.items()}


def hf_config(cfg: MambaConfig, dtype="bfloat16"):
    c = {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "state_size": cfg.d_state,
        "num_hidden_layers": cfg.n_layer,
        "layer_norm_epsilon": cfg.norm_eps,
        "expand": cfg.expand,
        "conv_kernel": cfg.d_conv,
        "intermediate_size": cfg.d_inner,
        "time_step_rank": cfg.dt_rank,
        "time_step_scale": 1.0,
        "time_step_min": cfg.dt_min,
        "time_step_max": cfg.dt_max,
        "time_step_init_scheme": "random",
        "time_step_floor": cfg.dt_init_floor,
        "use_bias": False,
        "use_conv_bias": True,
        "hidden_act": "silu",
        "initializer_range": cfg.init_std,
        "residual_in_fp32": True,
        "rescale_prenorm_residual": False,
        "use_cache": True,
        "use_mambapy": False,
        "tie_word_embeddings": True,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": dtype,
    }
    if cfg.lti:
        c["mambascope_lti"] = True
    c.update(cfg.extra)
    return c


def config_from_hf(c):
    return MambaConfig(
        vocab_size=c["vocab_size"], d_model=c["hidden_size"], n_layer=c["num_hidden_layers"],
        d_state=c["state_size"], d_conv=c["conv_kernel"], expand=c["expand"], dt_rank=c["time_step_rank"],
        dt_min=c["time_step_min"], dt_max=c["time_step_max"], dt_init_floor=c["time_step_floor"],
        norm_eps=c["layer_norm_epsilon"], init_std=c["initializer_range"], lti=bool(c.get("mambascope_lti")),
        bos_token_id=c["bos_token_id"], eos_token_id=c["eos_token_id"], pad_token_id=c["pad_token_id"])


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format: u64 header length, JSON header, raw little-endian tensor bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.view(torch.int16 if t.element_size() == 2 else torch.int32).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dtype = _FROM_ST[info["dtype"]]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtype) if b > a else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def tokenizer_config(eos_token=None, model_max_length=1 << 20):
    return {
        "tokenizer_class": "LlamaTokenizer",
        "model_max_length": model_max_length,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "unk_token": "<unk>",
        "bos_token": None,
        "eos_token": eos_token,
        "pad_token": None,
    }


def save_folder(model: MambaLM, folder, tokenizer_model, eos_token=None, dtype=torch.bfloat16):
    os.makedirs(folder, exist_ok=True)
    name = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[dtype]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(model.cfg, name), f, indent=2)
        f.write("\n")
    tensors = {k: v.to(dtype) for k, v in model.hf_state_dict().items()}
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    shutil.copy(tokenizer_model, os.path.join(folder, "tokenizer.model"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(eos_token), f, indent=2)
        f.write("\n")


def load_folder(folder, dtype=torch.float32):
    """Our model from a folder, weights converted to dtype (fp32: the bf16 values, exactly)."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = config_from_hf(json.load(f))
    model = MambaLM(cfg)
    sd = {k: v.to(dtype) for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{folder}: missing {missing}, unexpected {unexpected}")
    return model.to(dtype).eval()


def check_against_hf(folder, ids):
    """Max |logits(ours) - logits(transformers MambaForCausalLM)|, both fp32 on the CPU (HF's slow
    path: no CUDA kernels), from the same folder. ids {b, L} int64. Returns a dict."""
    from transformers import MambaForCausalLM

    try:
        hf = MambaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except TypeError:
        hf = MambaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    hf = hf.float().eval()
    ours = load_folder(folder).eval()
    with torch.no_grad():
        ref = hf(input_ids=ids).logits.float()
        got = ours(ids).float()
    diff = (ref - got).abs().max().item()
    return {
        "max_abs_diff": diff,
        "logits_range": (ref.max() - ref.min()).item(),
        "argmax_agree": (ref.argmax(-1) == got.argmax(-1)).float().mean().item(),
        "tokens": int(ids.numel()),
        "hf_class": type(hf).__name__,
    }
