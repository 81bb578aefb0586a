"""K folds trained at once as one stacked model, with the semantics of training them one by one (`fold.fit`).

Each fold keeps its own parameters, Adam state, batch-norm statistics, data order and augmentation: the same seed
gives a fold the same initial weights (`create_model` after `torch.manual_seed(fold seed)`), the same shuffles and
affine maps (`fold.epoch_draws` on the fold's own generator) and, on the CPU, the same dropout masks as `fit`.

How it is built:

- One template network runs under `torch.func.vmap` over `torch.func.functional_call`. Each fold's parameters
  are one flat leaf tensor; the K leaves are stacked each step, so a single backward gives every fold its own
  gradient (the folds' losses are summed; no fold's loss depends on another's parameters), and one
  `torch.optim.Adam` over the K leaves is each fold's own Adam (own moments and step count; on CUDA one
  multi-tensor update for all folds). vmap turns each convolution into one grouped convolution: a GPU path. On a
  CPU, grouped or vmapped small convolutions are slower than separate ones, so `stacked` is never the CPU default.
- Folds whose training sets differ in size take different numbers of steps, and their last batches differ in
  size. Each step pads every fold's batch to the step's largest; a padded clip is masked out of the loss and out
  of batch norm's statistics (`StackedBatchNorm`), and a fold with no batch at a step ("idle": its epoch has ended,
  or its last batch had one clip, which `fit` skips) keeps its parameters, Adam state and running statistics
  unchanged. When every fold trains a full batch, batch norm runs torch's own kernel under vmap.
- Batch norm's running statistics are stacked buffers updated in place under vmap. `nn.Dropout` draws its masks
  outside vmap, per fold, from the fold's own generator (on the CPU: the global generator's state after the
  fold's initialisation, exactly what `fit`'s dropout draws from), so they are the masks `fit` draws.
- On CUDA the step runs under bf16 autocast as `fit`'s does, with the dataset resident on the device and the
  inputs made once per run (`executors.inputs_for`). It does not run channels_last: vmap cannot query a tensor's
  layout, so `IgnoreMemoryFormat` drops the networks' own `contiguous(memory_format=...)` requests (a layout hint,
  no effect on values); whether cuDNN's grouped convolutions in NCHW cost speed is for `benchmarks/gpu_check.sh`.
- `tests/test_engine_stacked.py` checks every fold's weights and test probabilities against one-by-one `fit` in
  float64 (to 1e-6; they agree to about 1e-8, the rounding of the float32 loss both paths compute).

Supported: every network whose only operations across the clips of a batch are batch norm (all of pamer's),
whose only random operation is `nn.Dropout`, and whose parameters all train. Refused with a message: other
random layers (Dropout1d/2d/3d, AlphaDropout, random ops called functionally inside `forward`), batch or instance
norm without running statistics, frozen parameters, and networks that declare their own inputs, loss or fold
statistics (`pamer.models.method`: they train on the local or process executors). On CUDA the masks of dropout
come from a per-fold CUDA generator, so they differ from a one-by-one CUDA run's (which come from torch's fused
kernel); bf16 autocast makes either path reproducible only against itself, not bit for bit against the other.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.overrides import TorchFunctionMode

from pamer.config import Config
from pamer.engine.augment import warp
from pamer.engine.fold import (
    FitResult,
    FoldOutput,
    epoch_draws,
    fold_outputs,
    fold_plan,
    fold_seed,
    make_optimizer,
    setup_fold,
    train_learner,
)
from pamer.errors import PamerError
from pamer.models import create_model, model_method
from pamer.preprocess.cache import Cache

__all__ = [
    "FoldSpec",
    "FoldStack",
    "IgnoreMemoryFormat",
    "StackedBatchNorm",
    "StackedDropout",
    "StackedEpochCallback",
    "StackedError",
    "StepState",
    "check_stackable",
    "fit_stacked",
    "fold_bytes",
    "free_bytes",
    "stack_size",
    "swap_layers",
    "train_folds_stacked",
]

# (epoch 1-based, [(mean training loss, training accuracy) of each fold of the stack]) after each epoch
StackedEpochCallback = Callable[[int, list[tuple[float, float]]], None]

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
OTHER_DROPOUTS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class StackedError(PamerError):
    """A network or setting the stacked executor cannot train with one-by-one semantics (the message says why)."""


@dataclass
class FoldSpec:
    """One fold of a stack: its training and test clips and its seed (`fold.fold_seed`)."""

    train_idx: np.ndarray
    test_idx: np.ndarray | None
    seed: int


class StepState:
    """What the stacked layers of the template read during one vmapped call (set per call, cleared after).

    Attributes:
        full: every fold trains a batch of the same size this step (batch norm may use torch's kernel).
        mask: (B,) 1 for a fold's real clips, 0 for padding (a per-fold slice under vmap).
        active: () whether the fold trains this step.
        drops: this step's dropout masks, one per `nn.Dropout` call in forward order.
        probe: set while recording the dropout calls' shapes: (p, shape without the batch, channels_last) each.
    """

    def __init__(self) -> None:
        self.full = True
        self.mask: Tensor | None = None
        self.active: Tensor | None = None
        self.drops: list[Tensor] = []
        self.next_drop = 0
        self.probe: list[tuple[float, tuple[int, ...], bool]] | None = None

    def clear(self) -> None:
        self.mask = self.active = None
        self.drops = []
        self.next_drop = 0


class StackedBatchNorm(nn.Module):
    """Batch norm of one fold inside the stack, with the parameter and buffer names of the layer it replaces.

    Training: with `state.full`, torch's `F.batch_norm` (which updates the vmapped running statistics in place);
    otherwise the same computation over the fold's unmasked clips only, and running statistics (and the batch
    count) updated only for an active fold. Evaluation: the running statistics, as `nn.BatchNorm2d` does.
    """

    def __init__(self, bn: nn.Module, state: StepState) -> None:
        super().__init__()
        if not bn.track_running_stats:
            raise StackedError(
                f"{type(bn).__name__} without running statistics normalises with each batch's statistics at "
                "evaluation too, so padded clips would change a fold's predictions; use --executor local or process"
            )
        self.state = state
        self.momentum = bn.momentum
        self.eps = bn.eps
        self.weight = bn.weight
        self.bias = bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        state = self.state
        if state.probe is not None:
            return x
        if state.full and self.momentum is not None:
            self.num_batches_tracked.add_(1)
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps
            )
        return self.masked(x, state.mask, state.active)

    def masked(self, x: Tensor, mask: Tensor, active: Tensor) -> Tensor:
        """Batch norm over the clips where `mask` is 1; running statistics move only when `active`."""
        # statistics in float32 at least: under CUDA autocast x may be bf16 (torch's kernel does the same)
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
        channel = (1, -1) + (1,) * (x.dim() - 2)
        dims = [0, *range(2, x.dim())]
        m = mask.to(xf.dtype).view((-1,) + (1,) * (x.dim() - 1))
        count = m.sum() * (x[0, 0].numel())
        n = count.clamp_min(1)
        mean = (xf * m).sum(dims) / n
        centred = xf - mean.view(channel)
        var = (centred * centred * m).sum(dims) / n
        # an idle fold (no clip) gets finite values that nothing uses; a zero variance would blow them up
        var = torch.where(count > 0, var, torch.ones_like(var))
        y = centred * torch.rsqrt(var + self.eps).view(channel)
        if self.weight is not None:
            y = y * self.weight.view(channel) + self.bias.view(channel)
        with torch.no_grad():
            batches = self.num_batches_tracked + active.long()
            factor = self.momentum if self.momentum is not None else 1.0 / batches.clamp_min(1).to(xf.dtype)
            unbiased = var * count / (count - 1).clamp_min(1)  # the running variance is unbiased, as torch's
            new_mean = factor * mean + (1 - factor) * self.running_mean
            new_var = factor * unbiased + (1 - factor) * self.running_var
            self.running_mean.copy_(torch.where(active, new_mean, self.running_mean))
            self.running_var.copy_(torch.where(active, new_var, self.running_var))
            self.num_batches_tracked.copy_(batches)
        return y.to(x.dtype)


class StackedDropout(nn.Module):
    """`nn.Dropout` of one fold inside the stack: multiplies by the mask drawn for this fold outside vmap."""

    def __init__(self, p: float, state: StepState) -> None:
        super().__init__()
        self.p = p
        self.state = state

    def forward(self, x: Tensor) -> Tensor:
        state = self.state
        if state.probe is not None:
            channels_last = (
                x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            )
            state.probe.append((self.p, tuple(x.shape[1:]), channels_last))
            return x
        if not self.training or self.p == 0:  # F.dropout draws nothing for p = 0
            return x
        mask = state.drops[state.next_drop]
        state.next_drop += 1
        if mask.shape != x.shape:
            raise StackedError(
                f"a dropout layer saw a {tuple(x.shape)} input where the shape probe gave {tuple(mask.shape)}: "
                "the stacked executor needs dropout inputs whose shape depends only on the batch size"
            )
        return x * mask.to(x.dtype)


class IgnoreMemoryFormat(TorchFunctionMode):
    """Drops `memory_format` from `Tensor.contiguous` calls: vmap cannot query layouts, and a layout is a hint
    with no effect on values (pamer's networks ask for channels_last inside `forward`)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is Tensor.contiguous and "memory_format" in kwargs:
            kwargs = {k: v for k, v in kwargs.items() if k != "memory_format"}
        return func(*args, **kwargs)


def check_stackable(model: nn.Module, name: str) -> None:
    """Refuse, with the reason, a network the stack cannot train with one-by-one semantics."""
    method = model_method(name)
    if method.declared:
        raise StackedError(
            f"model {name!r} declares {method.what()} (pamer.models.method), which the stacked executor does not "
            "train; use --executor local or process"
        )
    for module_name, module in model.named_modules():
        where = f"model {name!r} layer {module_name or '(root)'}"
        if isinstance(module, OTHER_DROPOUTS) and module.p > 0:
            raise StackedError(
                f"{where} is a {type(module).__name__}: the stacked executor reproduces only nn.Dropout's masks; "
                "use --executor local or process"
            )
        if isinstance(module, INSTANCE_NORMS) and module.track_running_stats:
            raise StackedError(
                f"{where} is an instance norm with running statistics (averaged over the batch, so padded clips "
                "would enter them); use --executor local or process"
            )
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        raise StackedError(f"model {name!r} has frozen parameters ({', '.join(frozen[:3])}); the stack trains all")


def swap_layers(model: nn.Module, state: StepState) -> nn.Module:
    """`model` (changed in place) with batch norms and dropouts replaced by their stacked versions."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, BATCH_NORMS):
                setattr(module, child_name, StackedBatchNorm(child, state))
            elif type(child) is nn.Dropout:
                setattr(module, child_name, StackedDropout(child.p, state))
    return model


class FoldStack:
    """K folds of one run, trained together: see the module docstring for how and with what guarantees.

    Args:
        config: the run's configuration.
        inputs: every clip's un-normalised input from `prepare_inputs` (on the training device).
        labels: class index of every clip.
        num_classes: number of classes.
        folds: the folds of this stack.
    """

    def __init__(
        self, config: Config, inputs: Tensor, labels: np.ndarray, num_classes: int, folds: Sequence[FoldSpec]
    ) -> None:
        if not folds:
            raise ValueError("a stack needs at least one fold")
        self.config = config
        self.inputs = inputs
        self.device = inputs.device
        self.cuda = self.device.type == "cuda"
        self.folds = list(folds)
        self.k = len(folds)
        self.num_classes = num_classes
        self.y_all = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        self.state = StepState()
        self.drop_generators: list[torch.Generator] = []
        flats, buffers, weights = [], [], []
        self.means: list[list[float]] = []
        self.stds: list[list[float]] = []
        self.train_ts: list[Tensor] = []
        self.generators: list[torch.Generator] = []
        base = None
        for spec in self.folds:
            # each fold's network lives on only as its flat leaf (kept whole, a stack of 68 would hold 68 copies)
            setup = setup_fold(config, inputs, labels, num_classes, spec.train_idx, spec.seed)
            if base is None:  # refused before the other folds are built
                check_stackable(setup.model, config.model.name)
                base = setup.model
            self.means.append(setup.mean)
            self.stds.append(setup.std)
            self.train_ts.append(setup.train_t)
            self.generators.append(setup.generator)
            weights.append(setup.weight)
            if self.cuda:
                self.drop_generators.append(torch.Generator(self.device).manual_seed(spec.seed))
            else:  # fit's dropout draws from the global generator, which initialisation left here
                generator = torch.Generator()
                generator.set_state(setup.rng_state)
                self.drop_generators.append(generator)
            flats.append(torch.cat([p.detach().reshape(-1) for p in setup.model.parameters()]))
            buffers.append({n: b.detach() for n, b in setup.model.named_buffers()})
        self.base = base
        self.names = [n for n, _ in base.named_parameters()]
        self.shapes = [p.shape for p in base.parameters()]
        # each fold's parameters as one flat leaf: torch.optim.Adam itself updates the folds, each with its own
        # moments and step count, and skips a fold whose gradient is None (an idle fold) as it skips any parameter
        self.leaves = [flat.requires_grad_(True) for flat in flats]
        self.optimizer = make_optimizer(config, self.leaves)
        self.buffers = {n: torch.stack([b[n] for b in buffers]) for n in buffers[0]}
        dtype = inputs.dtype
        self.mean_t = torch.tensor(self.means, dtype=dtype, device=self.device)  # (K, C)
        self.std_t = torch.tensor(self.stds, dtype=dtype, device=self.device)
        self.weight = None if weights[0] is None else torch.stack(weights)  # (K, classes)
        self.template = swap_layers(copy.deepcopy(base), self.state)
        if [n for n, _ in self.template.named_parameters()] != self.names or set(
            n for n, _ in self.template.named_buffers()
        ) != set(self.buffers):
            raise StackedError(f"model {config.model.name!r}: its stacked layers changed its parameter names")
        self.drop_specs = self.probe_dropouts()

    def params(self) -> dict[str, Tensor]:
        """Each parameter as a (K, *shape) view of the folds' leaves stacked (one copy per step, differentiable)."""
        stacked = torch.stack(self.leaves)
        out, at = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = shape.numel()
            out[name] = stacked[:, at : at + n].view(self.k, *shape)
            at += n
        return out

    def probe_dropouts(self) -> list[tuple[float, tuple[int, ...], bool]]:
        """The (p, per-clip shape, channels_last) of each dropout call in forward order (a run on `meta`)."""
        # the copy shares the step state (deepcopy's memo), so its layers report to this stack
        probe = copy.deepcopy(self.template, {id(self.state): self.state}).to("meta").train()
        self.state.probe = []
        try:
            with torch.no_grad():
                probe(torch.empty(2, *self.inputs.shape[1:], device="meta"))
            return [spec for spec in self.state.probe if spec[0] > 0]
        finally:
            self.state.probe = None

    def run(self, x: Tensor, mask: Tensor, active: Tensor, drops: list[Tensor], full: bool) -> Tensor:
        """Every fold's logits of its batch: x (K, B, C, H, W) -> (K, B, classes)."""
        state = self.state

        def one_fold(params, buffers, x, mask, active, drops):
            state.mask, state.active, state.drops, state.next_drop = mask, active, drops, 0
            return functional_call(self.template, (params, buffers), (x,))

        state.full = full
        try:
            with IgnoreMemoryFormat(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
                return vmap(one_fold, randomness="error")(self.params(), self.buffers, x, mask, active, drops)
        except RuntimeError as err:
            if "randomness" in str(err):
                raise StackedError(
                    f"model {self.config.model.name!r} draws random numbers outside nn.Dropout in its forward: the "
                    "stacked executor cannot give each fold its own draws; use --executor local or process"
                ) from None
            raise
        finally:
            state.clear()

    def dropout_masks(self, counts: list[int], width: int) -> list[Tensor]:
        """This step's dropout masks, (K, width, *shape) each, drawn per active fold from its own generator."""
        masks = []
        dtype = self.leaves[0].dtype
        for p, shape, channels_last in self.drop_specs:
            full = torch.zeros(self.k, width, *shape, dtype=dtype, device=self.device)
            for k, n in enumerate(counts):
                if n == 0:
                    continue
                if p == 1:  # F.dropout multiplies by zero without drawing
                    continue
                layout = torch.channels_last if channels_last else torch.contiguous_format
                noise = torch.empty((n, *shape), dtype=dtype, device=self.device, memory_format=layout)
                # fit's F.dropout: empty_like(input).bernoulli_(1 - p).div_(1 - p), input * noise
                full[k, :n] = noise.bernoulli_(1 - p, generator=self.drop_generators[k]).div_(1 - p)
            masks.append(full)
        return masks

    def train_epoch(self) -> list[tuple[float, float]]:
        """One epoch of every fold, as `fit` trains it: each fold's (mean training loss, training accuracy)."""
        config = self.config
        aug = config.augment
        batch = config.train.batch_size
        vector_channels = (0, 1) if config.data.representation == "flow" else None
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        self.template.train()
        draws = [epoch_draws(t, batch, aug, g) for t, g in zip(self.train_ts, self.generators, strict=True)]
        n_steps = max(len(spans) for _, _, spans in draws)
        # the epoch's clips and maps of every fold, padded: a padded clip is clip 0 under the identity map
        index = torch.zeros(n_steps, self.k, batch, dtype=torch.long)
        thetas = identity.expand(n_steps, self.k, batch, 2, 3).clone()
        counts = np.zeros((n_steps, self.k), dtype=np.int64)
        for k, (order, theta, spans) in enumerate(draws):
            for s, (begin, end, at) in enumerate(spans):
                index[s, k, : end - begin] = order[begin:end]
                thetas[s, k, : end - begin] = theta[at : at + end - begin]
                counts[s, k] = end - begin
        index, thetas = index.to(self.device), thetas.to(self.device)
        counts_t = torch.as_tensor(counts, device=self.device)
        loss_sum = torch.zeros(self.k, device=self.device)
        correct = torch.zeros(self.k, dtype=torch.long, device=self.device)
        for s in range(n_steps):
            width = int(counts[s].max())
            full = bool((counts[s] == width).all())
            mask = torch.arange(width, device=self.device)[None, :] < counts_t[s][:, None]  # (K, width)
            loss, logits, y = self.step(
                index[s, :, :width], thetas[s, :, :width], mask, counts[s].tolist(), vector_channels, full
            )
            with torch.no_grad():
                loss_sum += loss.detach() * counts_t[s]
                correct += ((logits.argmax(-1) == y) & mask).sum(1)
            for k in np.flatnonzero(counts[s] == 0):
                self.leaves[k].grad = None  # an idle fold: Adam leaves its parameters and state as they are
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        seen = np.maximum(counts.sum(0), 1)
        losses, hits = (loss_sum.double().cpu().numpy() / seen), (correct.cpu().numpy() / seen)
        return [(float(losses[k]), float(hits[k])) for k in range(self.k)]

    def step(
        self,
        index: Tensor,
        thetas: Tensor,
        mask: Tensor,
        counts: list[int],
        vector_channels: tuple[int, int] | None,
        full: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward and backward of one step: every fold's loss (K,), logits (K, B, classes) and labels (K, B).

        `counts` (each fold's clips this step) come from the host, so the step waits on nothing on the device.
        """
        k, width = index.shape
        flat_index = index.reshape(-1)
        x = self.inputs[flat_index]  # a fresh copy: normalised in place below
        if self.config.augment.active:  # as in `fit`: with every augmentation off the maps are identities
            x = warp(x, thetas.reshape(-1, 2, 3), vector_channels=vector_channels)
        # normalize()'s (x - mean) / std, with each clip its fold's statistics
        x = x.sub_(self.mean_t.repeat_interleave(width, 0)[:, :, None, None])
        x = x.div_(self.std_t.repeat_interleave(width, 0)[:, :, None, None])
        x = x.view(k, width, *x.shape[1:])
        y = self.y_all[flat_index].view(k, width)
        drops = self.dropout_masks(counts, width)
        active = mask.any(1)
        logits = self.run(x, mask, active, drops, full)
        loss = self.loss(logits, y, mask)
        loss.sum().backward()
        return loss, logits.detach(), y

    def loss(self, logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        """Each fold's `F.cross_entropy(logits.float(), y, weight=...)` over its unmasked clips; 0 for an idle fold."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        nll = -logp.gather(-1, y[..., None]).squeeze(-1)
        valid = mask.to(nll.dtype)
        if self.weight is not None:
            valid = valid * torch.gather(self.weight, 1, y)
        total = valid.sum(1)
        return (nll * valid).sum(1) / torch.where(total > 0, total, torch.ones_like(total))

    @torch.no_grad()
    def predict(self) -> list[np.ndarray | None]:
        """Each fold's softmax probabilities of its test clips (float64, on the CPU; None without test clips)."""
        tests = [None if f.test_idx is None else np.asarray(f.test_idx, dtype=np.int64) for f in self.folds]
        longest = max((len(t) for t in tests if t is not None), default=0)
        if longest == 0:
            return [None if t is None else np.zeros((0, 0)) for t in tests]
        index = torch.zeros(self.k, longest, dtype=torch.long)
        for k, t in enumerate(tests):
            if t is not None:
                index[k, : len(t)] = torch.as_tensor(t)
        index = index.to(self.device)
        chunk = 2 * self.config.train.batch_size
        self.template.eval()
        out = []
        for begin in range(0, longest, chunk):
            part = index[:, begin : begin + chunk]
            width = part.shape[1]
            x = self.inputs[part.reshape(-1)]
            x = (x - self.mean_t.repeat_interleave(width, 0)[:, :, None, None]) / self.std_t.repeat_interleave(
                width, 0
            )[:, :, None, None]
            x = x.view(self.k, width, *x.shape[1:])
            ones = torch.ones(self.k, width, dtype=torch.bool, device=self.device)
            logits = self.run(x, ones, ones.any(1), [], True)
            out.append(torch.softmax(logits.double(), dim=-1).cpu())
        self.template.train()
        probs = torch.cat(out, dim=1).numpy()
        return [None if t is None else probs[k, : len(t)] for k, t in enumerate(tests)]

    def model(self, k: int) -> nn.Module:
        """Fold `k`'s network after training, as a plain module in eval mode."""
        model = copy.deepcopy(self.base)
        with torch.no_grad():
            state = {n: v[k].clone() for n, v in self.params().items()}
        state.update({n: v[k].clone() for n, v in self.buffers.items()})
        model.load_state_dict(state)
        return model.eval()


def fit_stacked(
    config: Config,
    inputs: Tensor,
    labels: np.ndarray,
    num_classes: int,
    folds: Sequence[FoldSpec],
    *,
    on_epoch: StackedEpochCallback | None = None,
    models: bool = True,
) -> list[FitResult]:
    """`fold.fit` for every fold of `folds`, trained together; results in the order of `folds`.

    Each result is what `fit(config, inputs, labels, num_classes, f.train_idx, f.test_idx, seed=f.seed)` returns
    (to floating-point rounding; `seconds` is the stack's wall time divided among its folds). Without `models` the
    results hold no network (`model` None): the folds' predictions only.
    """
    start = time.perf_counter()
    stack = FoldStack(config, inputs, labels, num_classes, folds)
    return train_learner(config, stack, start=start, on_epoch=on_epoch, models=models)


def train_folds_stacked(
    config: Config,
    cache: Cache,
    inputs: Tensor,
    folds: Sequence[int],
    on_epoch: StackedEpochCallback | None = None,
) -> list[FoldOutput]:
    """`fold.train_fold` for each fold index of `folds`, trained as one stack."""
    plan = fold_plan(cache.subjects)
    specs = [FoldSpec(plan[f][1], plan[f][2], fold_seed(config.seed, f)) for f in folds]
    labels = np.asarray(cache.labels, dtype=np.int64)

    def train() -> list[FitResult]:
        return fit_stacked(config, inputs, labels, len(cache.classes), specs, on_epoch=on_epoch, models=False)

    return fold_outputs(config, cache, folds, train, inputs.device)


def fold_bytes(config: Config, in_chans: int, num_classes: int) -> int:
    """Device memory one fold of a stack needs, estimated: parameters, gradient and two Adam moments, plus the
    tensors the forward pass keeps for the backward at `train.batch_size` (counted on the `meta` device), twice
    (vmap's grouped convolutions copy their inputs)."""
    size, batch = config.train.input_size, config.train.batch_size
    with torch.device("meta"):
        model = create_model(config.model.name, num_classes=num_classes, **config.model.args).train()
        x = torch.empty(batch, in_chans, size, size)
    saved = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return 4 * params + 2 * saved


def free_bytes(device: torch.device) -> int:
    """Free memory of `device`: CUDA's free memory, or the host's available memory for the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def stack_size(config: Config, device: torch.device, in_chans: int, num_classes: int, n_folds: int) -> int:
    """How many folds to train at once: all of them when 70 % of the free memory holds them, else as many as fit."""
    per_fold = fold_bytes(config, in_chans, num_classes)
    return int(max(1, min(n_folds, 0.7 * free_bytes(device) // max(per_fold, 1))))
