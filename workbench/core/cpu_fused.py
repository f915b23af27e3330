"""The CPU's fast path for sampling: the MLP's layers as oneDNN matmuls with bias and
activation fused in, on the network's live weights.

On the CPU a sampling step of the default 3x256 MLP is almost all network, and of the network
a third was memory traffic around the matmuls, not the matmuls: ``addmm`` first copies the
broadcast bias into its (batch x 256) output and then accumulates the product onto it, and the
activation is one more pass over that output. oneDNN's matmul applies the bias and the
activation in its epilogue, while the product's tile is still in registers
(``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile`` emits for Linear +
activation on the CPU): one pass over the output instead of three. The sum is the same
(the same products added in a different order), so the output equals the plain forward to
float32 round-off (~1e-7 relative), not bit for bit.

What is fused:

* every hidden layer, ``act(W h + b)``;
* the first layer ``act(W x + b + time(emb(t)))``: every sample of a sampling step has the same
  time (and class), so the time branch is one row (:func:`~workbench.core.nets.time_rows`) and
  ``b + time(...)`` one bias vector. With a time or a class per sample (training, or a caller
  that passes them) the network runs as it is.

:func:`fuse_for_cpu` swaps every :class:`~workbench.core.nets.MLPNet` in a model (a
:class:`~workbench.core.nets.ScoreModel`, a :class:`~workbench.core.guidance.GuidedScore`
around one, ...) for a :class:`FusedMLP` that reads the same parameters, in a shallow copy of
the model: the caller's model is untouched, and training that goes on in place is seen by the
copy (the weights' oneDNN layouts are remade whenever a weight has changed). A model without
such a network (a user's network, the U-Net, the analytic score, a subclass with its own
``forward``) is returned as it is, with the reason. :class:`FusedMLP` itself runs the plain
forward wherever the fused one does not apply: with autograd on, under autocast, off the CPU,
or in any dtype but float32.

``precision = "bf16"`` (``sample.precision``) runs the same layers in bfloat16: weights packed
in bf16, activations kept in bf16 between layers, every product accumulated in fp32 by oneDNN
(the numerics of ``torch.autocast("cpu", torch.bfloat16)``, ~0.4% relative error per layer),
and the output returned in float32. Where the CPU has bf16 matrix units (AMX, AVX-512 BF16) a
256x256 layer takes about a quarter of its fp32 time; under autocast the bf16 SiLU that
follows every matmul (a separate pass, slow in bf16) ate most of that gain, which the fused
epilogue does not pay. Whether bf16 pays here is :func:`native_bf16`.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional

from workbench.core.nets import MLPNet, apply_activation, time_label_features

__all__ = ["FusedMLP", "fused_linear_available", "fuse_for_cpu", "native_bf16"]

_log = logging.getLogger(__name__)

#: activations oneDNN applies in the matmul's epilogue, with the (attr, algorithm) that names
#: them; any other activation is applied after an epilogue that adds the bias only
_EPILOGUES: dict[type[nn.Module], tuple[str, str]] = {
    nn.SiLU: ("swish", ""),
    nn.ReLU: ("relu", ""),
    nn.Tanh: ("tanh", ""),
}


def _epilogue(act: nn.Module) -> tuple[str, str] | None:
    if isinstance(act, nn.GELU):  # its exact and tanh forms are both oneDNN's
        return ("gelu", "tanh" if act.approximate == "tanh" else "none")
    return _EPILOGUES.get(type(act))


def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 matmuls natively on this CPU (AMX or AVX-512 BF16), where
    bf16 sampling is faster than fp32; elsewhere it is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def fused_linear_available(dtype: torch.dtype = torch.float32) -> str | None:
    """None when oneDNN's fused Linear runs here in ``dtype`` and agrees with
    ``act(linear(x))``; else why not.

    Checked once per process and dtype on a small problem for every epilogue used: a torch
    built without oneDNN, a CPU it does not support, or a future change of the private op's
    signature all end here as a reason, and the sampler runs plainly. In bf16 the fused
    output is compared with the fp32 product of the same bf16-rounded inputs, to bf16's
    own round-off.
    """
    if not torch.backends.mkldnn.is_available():
        return "this torch is built without oneDNN (MKLDNN)"
    bf16 = dtype == torch.bfloat16
    if bf16 and not native_bf16():
        return "oneDNN has no bfloat16 support on this CPU"
    tol = 2e-2 if bf16 else 1e-5
    try:
        op = torch.ops.mkldnn._linear_pointwise
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(37, 24, generator=gen).to(dtype)
        w = (torch.randn(16, 24, generator=gen) / 5).to(dtype)
        b = torch.randn(16, generator=gen).to(dtype)
        ref = functional.linear(x.float(), w.float(), b.float())
        checks: list[tuple[str, str, Callable[[Tensor], Tensor]]] = [
            ("none", "", lambda h: h),
            ("swish", "", functional.silu),
            ("relu", "", functional.relu),
            ("tanh", "", torch.tanh),
            ("gelu", "none", functional.gelu),
            ("gelu", "tanh", lambda h: functional.gelu(h, approximate="tanh")),
        ]
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 37)
        for attr, algorithm, act in checks:
            for weight in (w, packed):
                got = op(x, weight, b, attr, [], algorithm)
                if got.dtype != dtype or not torch.allclose(
                    got.float(), act(ref), rtol=tol, atol=tol
                ):
                    return (
                        f"oneDNN's fused Linear + {attr} in {str(dtype)[6:]} disagrees with"
                        " the plain one here"
                    )
    except Exception as exc:  # a missing or changed private op: plain calls, said why
        return f"oneDNN's fused Linear is not usable here ({type(exc).__name__}: {exc})"
    return None


#: ``sample.precision`` -> the dtype of the fused layers
_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


class FusedMLP(nn.Module):
    """:class:`~workbench.core.nets.MLPNet`'s function, with oneDNN's fused Linear + activation
    without autograd on the CPU in float32 (see the module's docstring), else ``net`` itself.

    ``net`` is held as a submodule: the parameters are the network's own, read at every call.
    """

    def __init__(self, net: MLPNet, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        self.net = net
        self.precision = precision
        #: the dtype the layers run in (the input and output stay float32)
        self.dtype = _DTYPES[precision]
        self.epilogue = _epilogue(net.act)
        #: oneDNN's blocked copy of each weight, by id, with the weight and the (version,
        #: address) it was made from (holding the weight keeps its id from being reused)
        self._packed: dict[int, tuple[Tensor, tuple[int, int], Tensor]] = {}

    def _pack(self, weight: Tensor, rows: int) -> Tensor:
        """``weight`` reordered into oneDNN's blocked layout (~4% of a 256x256 layer's time at
        4096 rows), remade whenever the weight has changed since: every in-place write
        (optimizer steps, EMA updates, ``load_state_dict``) bumps the tensor's version, and a
        replaced ``.data`` moves its address, so the copy never goes stale."""
        stamp = (weight._version, weight.data_ptr())
        found = self._packed.get(id(weight))
        if found is not None and found[0] is weight and found[1] == stamp:
            return found[2]
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(self.dtype), rows)
        self._packed[id(weight)] = (weight, stamp, packed)
        return packed

    def _linear(self, h: Tensor, weight: Tensor, bias: Tensor, act: bool = True) -> Tensor:
        packed = self._pack(weight, h.shape[0])
        bias = bias.detach().to(self.dtype)
        if not act:
            return torch.ops.mkldnn._linear_pointwise(h, packed, bias, "none", [], "")
        if self.epilogue is None:
            out = torch.ops.mkldnn._linear_pointwise(h, packed, bias, "none", [], "")
            return apply_activation(self.net.act, out)
        attr, algorithm = self.epilogue
        return torch.ops.mkldnn._linear_pointwise(h, packed, bias, attr, [], algorithm)

    def _plain(self, x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        """The network's own forward; in bf16 under autocast, the output in ``x``'s dtype."""
        if self.dtype == torch.float32 or x.device.type != "cpu":
            return self.net(x, t, y)
        with torch.autocast("cpu", dtype=self.dtype):
            return self.net(x, t, y).to(x.dtype)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        net = self.net
        if (
            torch.is_grad_enabled()
            or x.dtype != torch.float32
            or net.inp.weight.dtype != torch.float32
            or x.device.type != "cpu"
            or torch.is_autocast_enabled("cpu")
        ):
            return self._plain(x, t, y)
        emb = time_label_features(net, t, x, y)
        if emb.shape[0] != 1:  # a time or class per sample: not a sampling step
            return self._plain(x, t, y)
        # one time for all: the time branch is part of the first layer's bias
        bias = (net.time(emb) + net.inp.bias).reshape(-1)
        flat = x.reshape(x.shape[0], -1).to(self.dtype).contiguous()
        h = self._linear(flat, net.inp.weight, bias)
        for layer in cast(list[nn.Linear], net.hidden):
            h = self._linear(h, layer.weight, layer.bias)
        if self.dtype == torch.float32:
            return net.out(h).reshape(x.shape)
        return self._linear(h, net.out.weight, net.out.bias, act=False).float().reshape(x.shape)


def _swapped(module: nn.Module, precision: str) -> nn.Module:
    """``module`` with every MLPNet below it wrapped, copying only the modules on the way to
    one (shallowly, with their own child dicts); ``module`` itself where there is none."""
    if type(module) is MLPNet:  # a subclass may have a forward of its own
        return FusedMLP(module, precision)
    children = {
        name: _swapped(child, precision) for name, child in module._modules.items() if child
    }
    if all(children[name] is module._modules[name] for name in children):
        return module
    other = copy.copy(module)
    other._modules = {**module._modules, **children}
    return other


def fuse_for_cpu(
    model: nn.Module | Callable[..., Tensor], precision: str = "fp32"
) -> tuple[Any, str]:
    """``(model with its MLPs fused, "")``, or ``(model, why not)`` where nothing applies.

    ``precision`` is ``fp32`` or ``bf16`` (see the module's docstring). The reason is also
    logged (``workbench.core.cpu_fused``, level INFO), so a run that expected the fast path can
    find out why it ran plainly.
    """
    reason = fused_linear_available(_DTYPES[precision])
    if reason is None:
        if not isinstance(model, nn.Module):
            reason = "the score is a plain function, not a network"
        else:
            fused = _swapped(model, precision)
            if fused is not model:
                return fused, ""
            reason = f"{type(model).__name__} holds no 'mlp' network (the only one it fuses)"
    _log.info("CPU fast path not used: %s; plain calls", reason)
    return model, reason
