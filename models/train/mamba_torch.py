"""Mamba-1 in plain PyTorch, with the exact parameterization and tensor names of Hugging Face's
`MambaForCausalLM`, so that a state_dict saved from here loads there (and in our engine).

Why our own: training the bundled models needs no CUDA extension (mamba_ssm is not installed on
the GPU machine, and the HF slow path is a Python loop over tokens). The selective scan here is
vectorized: within chunks of CHUNK tokens the recurrence h_t = exp(dA_t) h_{t-1} + u_t is solved
in log space with two cumsums, and only the chunk ends are carried sequentially (L / CHUNK steps).
The backward pass is the same scan run in reverse (a custom autograd Function), so a layer keeps
only dA and h for backward, not every intermediate.

Also the LTI variant (config `mambascope_lti`, models/README.md): Δ, B, C are per-channel
parameters (`dt_lti` {d_inner}, `B_lti` {d_inner, d_state}, `C_lti` {d_inner, d_state}) instead
of functions of the input; everything else is Mamba-1.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

CHUNK = 4
# The in-chunk solution multiplies by exp(-S) with S the chunk's running sum of dA; clamping each
# step's dA at -20 keeps |S| <= 80 < log(FLT_MAX) for CHUNK = 4. exp(-20) = 2e-9 is below float32
# resolution relative to 1, so the clamp does not change the result at float32 precision.
DA_MIN = -20.0


@dataclass
class MambaConfig:
    vocab_size: int = 4096
    d_model: int = 384
    n_layer: int = 8
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0  # 0 = "auto" = ceil(d_model / 16)
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    norm_eps: float = 1e-5
    init_std: float = 0.02  # embedding init (HF: initializer_range)
    lti: bool = False
    bos_token_id: int = 0
    eos_token_id: int = 0
    pad_token_id: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.dt_rank:
            self.dt_rank = math.ceil(self.d_model / 16)

    @property
    def d_inner(self):
        return self.expand * self.d_model


def _scan_forward(dA, u):
    """h_t = exp(dA_t) * h_{t-1} + u_t, h_{-1} = 0, over dim 1. dA, u {b, L, d, n} float32 -> h."""
    b, L, d, n = u.shape
    pad = (-L) % CHUNK
    if pad:
        dA = F.pad(dA, (0, 0, 0, 0, 0, pad))
        u = F.pad(u, (0, 0, 0, 0, 0, pad))
    nc = (L + pad) // CHUNK
    dA = dA.reshape(b, nc, CHUNK, d, n)  # {b, nc, T, d, n}
    u = u.reshape(b, nc, CHUNK, d, n)
    S = dA.cumsum(2)                      # log of the decay from the chunk start, in [-80, 0]
    h = torch.exp(-S).mul_(u).cumsum_(2)  # sum_s exp(-S_s) u_s
    eS = S.exp_()                         # S is no longer needed: reuse its memory
    h.mul_(eS)                            # local solution, zero state at the chunk start
    if nc > 1:
        decay = eS[:, :, -1]              # {b, nc, d, n} decay across each whole chunk
        ends = h[:, :, -1]                # {b, nc, d, n} local state at each chunk end
        carry = torch.zeros_like(ends[:, 0])
        starts = torch.empty_like(ends)   # state entering each chunk
        for c in range(nc):
            starts[:, c] = carry
            carry = torch.addcmul(ends[:, c], decay[:, c], carry)
        h.addcmul_(eS, starts.unsqueeze(2))
    return h.reshape(b, nc * CHUNK, d, n)[:, :L]


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dA, u):
        h = _scan_forward(dA, u)
        ctx.save_for_backward(dA, h)
        return h

    @staticmethod
    def backward(ctx, gh):
        dA, h = ctx.saved_tensors
        # Adjoint: lam_t = gh_t + exp(dA_{t+1}) lam_{t+1}: the same scan, reversed in time.
        dA_next = F.pad(dA[:, 1:], (0, 0, 0, 0, 0, 1))
        lam = _scan_forward(dA_next.flip(1), gh.contiguous().flip(1)).flip(1)
        h_prev = F.pad(h[:, :-1], (0, 0, 0, 0, 1, 0))
        g_dA = lam * h_prev * dA.exp()
        return g_dA, lam


def linear_scan(dA, u):
    return _LinearScan.apply(dA.contiguous(), u.contiguous())


def linear_scan_reference(dA, u):
    """The plain token loop (as HF's slow path does it), for tests."""
    h = torch.zeros_like(u[:, 0])
    out = []
    for t in range(u.shape[1]):
        h = torch.exp(dA[:, t]) * h + u[:, t]
        out.append(h)
    return torch.stack(out, 1)


def selective_scan(x, delta, A, B, C, D, scan=linear_scan):
    """y_t = C_t . h_t + D x_t with h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t.

    x, delta {b, L, d}; A {d, n}; B, C {b, L, n} (selective) or {d, n} (LTI); D {d}. float32.
    """
    dA = torch.clamp(delta.unsqueeze(-1) * A, min=DA_MIN)  # {b, L, d, n}
    dx = (delta * x).unsqueeze(-1)                           # {b, L, d, 1}
    if B.dim() == 2:
        u = dx * B                                           # LTI: B {d, n}
    else:
        u = dx * B.unsqueeze(2)                              # B {b, L, 1, n}
    h = scan(dA, u)                                          # {b, L, d, n}
    if C.dim() == 2:
        y = (h * C).sum(-1)
    else:
        y = torch.einsum("bldn,bln->bld", h, C)
    return y + x * D


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(dtype)


def _inverse_softplus_dt(cfg, n):
    # dt log-uniform in [dt_min, dt_max], floored; stored before softplus (as mamba_ssm does).
    dt = torch.exp(torch.rand(n) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
    dt = dt.clamp(min=cfg.dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))


class MambaMixer(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        di, n = cfg.d_inner, cfg.d_state
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, padding=cfg.d_conv - 1, bias=True)
        if cfg.lti:
            self.dt_lti = nn.Parameter(_inverse_softplus_dt(cfg, di))
            self.B_lti = nn.Parameter(torch.randn(di, n) * 0.5)
            self.C_lti = nn.Parameter(torch.randn(di, n) * 0.5)
        else:
            self.x_proj = nn.Linear(di, cfg.dt_rank + 2 * n, bias=False)
            self.dt_proj = nn.Linear(cfg.dt_rank, di, bias=True)
            std = cfg.dt_rank ** -0.5
            nn.init.uniform_(self.dt_proj.weight, -std, std)
            with torch.no_grad():
                self.dt_proj.bias.copy_(_inverse_softplus_dt(cfg, di))
        A = torch.arange(1, n + 1, dtype=torch.float32).repeat(di, 1)  # {d_inner, n}: S4D-real
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, cfg.d_model, bias=False)

    def forward(self, hidden, scan=linear_scan):
        cfg = self.cfg
        L = hidden.shape[1]
        xz = self.in_proj(hidden)                          # {b, L, 2*d_inner}
        x, z = xz.chunk(2, dim=-1)                         # HF order: x first, gate second
        x = self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2)
        x = F.silu(x)                                      # {b, L, d_inner}
        dbc = None if cfg.lti else self.x_proj(x)          # {b, L, dt_rank + 2n}
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            # The scan and everything feeding it in float32, whatever the autocast dtype.
            A = -torch.exp(self.A_log.float())             # {d_inner, n}
            xf = x.float()
            if cfg.lti:
                delta = F.softplus(self.dt_lti.float()).expand_as(xf)
                B, C = self.B_lti.float(), self.C_lti.float()
            else:
                dt, B, C = torch.split(dbc.float(), [cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
                delta = F.softplus(F.linear(dt, self.dt_proj.weight.float(), self.dt_proj.bias.float()))
            y = selective_scan(xf, delta, A, B, C, self.D.float(), scan=scan)
        y = y.to(x.dtype) * F.silu(z)
        return self.out_proj(y)

    def probe_delta(self, hidden):
        """Δ {b, L, d_inner} for this layer's input (for checks that Δ is selective)."""
        cfg = self.cfg
        L = hidden.shape[1]
        x, _ = self.in_proj(hidden).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))
        if cfg.lti:
            return F.softplus(self.dt_lti.float()).expand(x.shape[0], L, -1)
        dt = self.x_proj(x).float()[..., : cfg.dt_rank]
        return F.softplus(F.linear(dt, self.dt_proj.weight.float(), self.dt_proj.bias.float()))


class MambaBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mixer = MambaMixer(cfg)

    def forward(self, x, scan=linear_scan):
        # residual_in_fp32, as HF's MambaBlock: the residual stream is float32.
        return x.float() + self.mixer(self.norm(x), scan=scan).float()


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList([MambaBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm_f = RMSNorm(cfg.d_model, cfg.norm_eps)


class MambaLM(nn.Module):
    """state_dict keys: backbone.embeddings.weight, backbone.layers.{i}.norm.weight,
    backbone.layers.{i}.mixer.{in_proj,conv1d,x_proj,dt_proj,out_proj}.weight, conv1d.bias,
    dt_proj.bias, A_log, D, backbone.norm_f.weight; lm_head tied to the embedding."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        nn.init.normal_(self.backbone.embeddings.weight, std=cfg.init_std)
        # GPT-2 / mamba_ssm style: scale the residual-branch output projections by 1/sqrt(n_layer).
        for layer in self.backbone.layers:
            with torch.no_grad():
                layer.mixer.out_proj.weight.div_(math.sqrt(cfg.n_layer))

    def forward(self, ids, scan=linear_scan):
        x = self.backbone.embeddings(ids)
        for layer in self.backbone.layers:
            x = layer(x, scan=scan)
        x = self.backbone.norm_f(x.to(self.backbone.embeddings.weight.dtype))
        return F.linear(x, self.backbone.embeddings.weight)  # {b, L, vocab}, tied head

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def hf_state_dict(self):
        """The tensors as they go into model.safetensors (no lm_head: it is tied)."""
        return {k: v for k, v in self.state_dict().items()}
