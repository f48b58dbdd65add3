"""Medusa-style heads (Cai et al. 2024, Medusa-1): trained on the user's own traffic by self-distillation.

Head k (k = 1 … K) is one residual block on the target's final hidden state h_t (after the final
norm), read out through the target's frozen lm_head:

    logits_k(h_t) = W_lm · (h_t + SiLU(W_k h_t + b_k))     predicts x_{t+1+k}

(the target's own lm_head predicts x_{t+1}). W_k starts at zero, so every head starts as a copy of
the target's next-token head — Medusa's initialisation.

Self-distillation: the frozen target greedily continues each training prompt; its final hidden states
over that continuation and the tokens it chose are the training set, so head k learns to guess what
the *target* will say k+1 tokens ahead on this traffic (hard labels: the target's argmax, which is
exactly what greedy verification accepts). Hidden states are collected once and cached; only the
heads train, on the CPU, for a bounded number of steps.

Shapes: H (N, d) hidden states; Y (N, K) labels, −100 where the continuation ends first.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from specdec import config
from specdec.config import SamplingConfig
from specdec.decoding.loops import baseline_decode
from specdec.errors import SpecdecError

HEADS_FILE = "heads.safetensors"
MANIFEST_FILE = "medusa.json"
IGNORE = -100


class MedusaHeads(nn.Module):
    """K residual blocks d → d. logits() reads them out through the target's lm_head."""

    def __init__(self, hidden_size: int, num_heads: int = config.MEDUSA_HEADS):
        super().__init__()
        self.hidden_size, self.num_heads = hidden_size, num_heads
        self.blocks = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_heads))
        for b in self.blocks:
            nn.init.zeros_(b.weight)
            nn.init.zeros_(b.bias)

    def forward(self, h: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """h (..., d) → (k, ..., d): the first k heads' features (all K by default)."""
        blocks = self.blocks[: k or self.num_heads]
        h = h.to(blocks[0].weight.dtype)
        return torch.stack([h + F.silu(b(h)) for b in blocks])

    def logits(self, h: torch.Tensor, lm_head: nn.Module, k: int | None = None) -> torch.Tensor:
        """h (d,) or (N, d) → float32 logits (k, V) or (k, N, V)."""
        z = self(h, k)
        return lm_head(z.to(lm_head.weight.dtype)).float()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class TrainReport:
    """What training did and how well the heads guess on prompts they never saw."""

    heads: int
    steps: int
    batch: int
    lr: float
    train_prompts: list[str]
    eval_prompts: list[str]
    train_positions: int
    eval_positions: int
    collect_s: float
    train_s: float
    loss_first: float  # mean loss over the first tenth of the steps
    loss_last: float  # … and over the last tenth
    # Per head k = 1 … K on held-out prompts: P(target's token is the head's top-1 / in its top-5).
    top1: list[float] = field(default_factory=list)
    top5: list[float] = field(default_factory=list)
    train_top1: list[float] = field(default_factory=list)
    target: dict = field(default_factory=dict)  # the target's manifest MODEL entry
    workload_sha256: str | None = None
    created: str = ""


def continuation_data(target, prompts: list[list[int]], max_new_tokens: int, eos_ids: set[int],
                      num_heads: int, on_prompt=None, should_stop=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states and labels from the target's own greedy continuations of the prompts.

    For prompt ids P and continuation C (the target's greedy tokens), s = P + C; position t with
    len(P) − 1 ≤ t < len(s) − 1 has h_t (which gave s[t+1]) and labels s[t+1+k] for k = 1 … K.
    Returns H (N, d) float32 and Y (N, K) int64; should_stop() turning true ends it after the prompt in
    flight (with the prompts so far).
    """
    device = next(target.parameters()).device
    hs, ys = [], []
    greedy = SamplingConfig()
    for i, ids in enumerate(prompts):
        if should_stop and should_stop():
            break
        prompt = torch.tensor(ids, device=device)
        cont = baseline_decode(target, prompt, max_new_tokens, greedy, eos_ids).tokens
        s = torch.tensor(ids + cont, device=device)
        with torch.inference_mode():
            h = target.base_model(input_ids=s[None]).last_hidden_state[0]  # (len(s), d)
        first, last = len(ids) - 1, len(s) - 1  # positions whose next token is the target's own
        hs.append(h[first:last].float().cpu())
        y = torch.full((last - first, num_heads), IGNORE, dtype=torch.long)
        for k in range(1, num_heads + 1):
            tgt = s[first + 1 + k:].cpu()  # s[t+1+k] for t = first …
            y[: len(tgt), k - 1] = tgt[: last - first]
        ys.append(y)
        if on_prompt:
            on_prompt(i + 1, len(prompts))
    if not hs:
        return torch.empty(0, target.config.get_text_config().hidden_size), torch.empty(0, num_heads, dtype=torch.long)
    return torch.cat(hs), torch.cat(ys)


def head_loss(heads: MedusaHeads, lm_head: nn.Module, H: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Mean over heads of the cross-entropy of head k against labels Y[:, k] (−100 ignored)."""
    logits = heads.logits(H, lm_head)  # (K, N, V)
    losses = [F.cross_entropy(logits[k], Y[:, k], ignore_index=IGNORE) for k in range(heads.num_heads)
              if (Y[:, k] != IGNORE).any()]
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def train(heads: MedusaHeads, lm_head: nn.Module, H: torch.Tensor, Y: torch.Tensor, steps: int, batch: int,
          lr: float, seed: int = 0, on_step=None, should_stop=None) -> list[float]:
    """AdamW on the heads only (lm_head frozen), minibatches of positions. Returns the loss per step;
    should_stop() turning true ends training after the step in flight (fewer losses than steps)."""
    if len(H) == 0:
        raise SpecdecError("no training positions: the target produced no continuation for the training prompts")
    for p in lm_head.parameters():
        p.requires_grad_(False)
    heads.train()
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    g = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        if should_stop and should_stop():
            break
        idx = torch.randint(len(H), (min(batch, len(H)),), generator=g)
        loss = head_loss(heads, lm_head, H[idx], Y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_step:
            on_step(step + 1, steps, losses[-1])
    heads.eval()
    return losses


def accuracy(heads: MedusaHeads, lm_head: nn.Module, H: torch.Tensor, Y: torch.Tensor, chunk: int = 256,
             top: int = 5) -> tuple[list[float], list[float]]:
    """Per head: share of labelled positions where the label is the top-1 / among the top-5 logits."""
    hit1 = torch.zeros(heads.num_heads)
    hit5 = torch.zeros(heads.num_heads)
    count = (Y != IGNORE).sum(0).float()
    with torch.inference_mode():
        for i in range(0, len(H), chunk):
            logits = heads.logits(H[i:i + chunk], lm_head)  # (K, n, V)
            best = logits.topk(top, dim=-1).indices  # (K, n, top)
            y = Y[i:i + chunk].T[..., None]  # (K, n, 1)
            valid = (y[..., 0] != IGNORE)
            hit1 += ((best[..., :1] == y).any(-1) & valid).sum(-1)
            hit5 += ((best == y).any(-1) & valid).sum(-1)
    safe = count.clamp(min=1)
    return [round(float(v), 4) for v in hit1 / safe], [round(float(v), 4) for v in hit5 / safe]


def save(heads: MedusaHeads, report: TrainReport, out_dir: str | Path) -> Path:
    """Write heads.safetensors and medusa.json (the training manifest) into out_dir."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in heads.state_dict().items()}, str(out / HEADS_FILE))
    meta = {"format": "specdec-medusa-1", "hidden_size": heads.hidden_size, "num_heads": heads.num_heads,
            "parameters": heads.parameter_count(), "dtype": str(next(heads.parameters()).dtype).removeprefix("torch."),
            "report": asdict(report)}
    tmp = out / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(out / MANIFEST_FILE)
    return out


def load(path: str | Path, target=None, device: str | torch.device = "cpu") -> tuple[MedusaHeads, dict]:
    """Heads and their manifest from a directory written by save(). With target, checks they fit it."""
    from safetensors.torch import load_file

    p = Path(path)
    if not (p / MANIFEST_FILE).is_file() or not (p / HEADS_FILE).is_file():
        raise SpecdecError(f"{p}: not a Medusa heads directory (expected {MANIFEST_FILE} and {HEADS_FILE}; "
                           "make one with `python -m specdec train-heads`)")
    try:
        meta = json.loads((p / MANIFEST_FILE).read_text())
        d, k = int(meta["hidden_size"]), int(meta["num_heads"])
        _check_shape(p, d, k, target)  # before allocating: the manifest alone sizes the heads
        heads = MedusaHeads(d, k)
        heads.load_state_dict(load_file(str(p / HEADS_FILE)))
    except (ValueError, KeyError, TypeError, RuntimeError, OSError, RecursionError) as e:
        raise SpecdecError(f"{p}: cannot read the Medusa heads ({str(e).splitlines()[0][:200]})") from None
    if target is not None:
        want = (meta.get("report") or {}).get("target", {}).get("parameters")
        have = sum(t.numel() for t in target.parameters())
        if want and want != have:
            raise SpecdecError(f"{p}: these heads were trained on another target ({want:,} parameters, this one has "
                               f"{have:,})")
    return heads.to(device).eval(), meta


def _check_shape(p: Path, d: int, k: int, target) -> None:
    """The manifest's hidden size d and head count K against the target (or sane bounds without one), and
    the weights file against the size those imply, all before a single tensor is allocated or read."""
    if not 1 <= k <= config.MAX_DRAFT_LENGTH:  # K heads draft at most K tokens a round
        raise SpecdecError(f"{p}: {k} heads; heads directories hold 1 … {config.MAX_DRAFT_LENGTH}")
    want = target.config.get_text_config().hidden_size if target is not None else None
    if want is not None and d != want:
        raise SpecdecError(f"{p}: these heads were trained for hidden size {d}, the target has {want}")
    if not 1 <= d <= 65_536:
        raise SpecdecError(f"{p}: hidden size {d} is not a model's")
    expected = k * (d * d + d) * 4  # float32 weights and biases, the largest dtype save() writes
    size = (p / HEADS_FILE).stat().st_size
    if size > expected + 1_000_000:  # + the safetensors header
        raise SpecdecError(f"{p}: {HEADS_FILE} is {size / 1e6:.0f} MB; {k} heads of size {d} need at most "
                           f"{expected / 1e6:.0f} MB")


def split(prompts: list, share: float = config.MEDUSA_TRAIN_SHARE, seed: int = 0) -> tuple[list, list]:
    """Stratified train/held-out split by category: ⌈share·n⌉ of each category trains (at least one
    prompt of a category stays held out when it has two or more). prompts: objects with .id, .category."""
    by_cat: dict[str, list] = {}
    for p in prompts:
        by_cat.setdefault(p.category, []).append(p)
    g = torch.Generator().manual_seed(seed)
    train_set, held = [], []
    for cat in sorted(by_cat):
        items = by_cat[cat]
        order = torch.randperm(len(items), generator=g).tolist()
        n = min(math.ceil(share * len(items)), len(items) - 1) if len(items) > 1 else 1
        chosen = set(order[:n])
        for i, p in enumerate(items):
            (train_set if i in chosen else held).append(p)
    return train_set, held


def fit(target, workload, out_dir: str | Path, *, num_heads: int = config.MEDUSA_HEADS,
        steps: int = config.MEDUSA_STEPS, batch: int = config.MEDUSA_BATCH, lr: float = config.MEDUSA_LR,
        train_share: float = config.MEDUSA_TRAIN_SHARE, max_new_tokens: int = config.MEDUSA_TRAIN_TOKENS,
        max_eval_prompts: int = config.MEDUSA_EVAL_PROMPTS, seed: int = config.DEFAULT_SEED,
        on_progress=None, should_stop=None) -> TrainReport | None:
    """`train-heads`: split the workload, collect the target's continuations, train, score, save.

    target: a specdec.models.LoadedModel; workload: a specdec.workloads.Workload.
    on_progress(stage, done, total, detail) with stage "collecting", "training" or "scoring".
    should_stop() turning true (the app's Cancel) stops between prompts or steps: nothing is saved and
    fit returns None.
    """
    from specdec.measure.models import eos_ids
    from specdec.results import now_iso
    from specdec.measure.workloads import encode_prompt

    report = on_progress or (lambda *a: None)
    stop = should_stop or (lambda: False)
    train_set, held = split(workload.prompts, train_share, seed)
    held = held[:max_eval_prompts]
    if not train_set:
        raise SpecdecError("the workload has no prompts to train the heads on")
    max_prompt = int(getattr(target.model.config, "max_position_embeddings", 4096) or 4096) - max_new_tokens - 1
    eos = set(eos_ids(target))
    ids = lambda ps: [encode_prompt(p, target.tokenizer, max_prompt)[0] for p in ps]  # noqa: E731
    d = target.model.config.get_text_config().hidden_size
    torch.manual_seed(seed)
    heads = MedusaHeads(d, num_heads)
    lm_head = target.model.get_output_embeddings()

    t0 = time.perf_counter()
    H, Y = continuation_data(target.model, ids(train_set), max_new_tokens, eos, num_heads,
                             lambda i, n: report("collecting", i, n + len(held), "training prompts"), stop)
    He, Ye = continuation_data(target.model, ids(held), max_new_tokens, eos, num_heads,
                               lambda i, n: report("collecting", len(train_set) + i, len(train_set) + n,
                                                   "held-out prompts"), stop)
    collect_s = time.perf_counter() - t0
    if stop():
        return None
    t1 = time.perf_counter()
    losses = train(heads, lm_head, H, Y, steps, batch, lr, seed,
                   lambda s, n, loss: report("training", s, n, f"loss {loss:.3f}"), stop)
    train_s = time.perf_counter() - t1
    if stop():
        return None
    report("scoring", 0, 1, "head accuracy")
    tenth = max(1, len(losses) // 10)
    top1, top5 = accuracy(heads, lm_head, He, Ye) if len(He) else ([], [])
    train_top1, _ = accuracy(heads, lm_head, H[:2048], Y[:2048])
    result = TrainReport(
        heads=num_heads, steps=steps, batch=batch, lr=lr, train_prompts=[p.id for p in train_set],
        eval_prompts=[p.id for p in held], train_positions=len(H), eval_positions=len(He),
        collect_s=round(collect_s, 2), train_s=round(train_s, 2),
        loss_first=round(sum(losses[:tenth]) / tenth, 4), loss_last=round(sum(losses[-tenth:]) / tenth, 4),
        top1=top1, top5=top5, train_top1=train_top1, target=target.info(), workload_sha256=workload.sha256,
        created=now_iso())
    save(heads, result, out_dir)
    report("scoring", 1, 1, "saved")
    return result
