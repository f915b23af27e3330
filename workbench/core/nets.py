"""Score networks: time embeddings, the networks themselves, and how their output becomes a score.

A score model s_theta(x, t) approximates grad_x log p_t(x) (Song et al. 2021, "Score-Based
Generative Modeling through Stochastic Differential Equations"). The network may predict the
score itself, the noise eps or the clean data x0; for a linear SDE, where
x_t = m(t) x0 + s(t) eps with eps ~ N(0, I), the three are exact transforms of one another:

    score = -eps / s                       (the conditional score of N(m x0, s^2 I) at x_t)
    score = -(x - m x0_hat) / s^2          (Tweedie: E[x0 | x_t] = (x_t + s^2 score) / m)

so :class:`ScoreModel` always answers with the score, whatever the network predicts. The
network may also predict the probability-flow velocity v (flow matching), with the drift
coefficient a(t) and g(t)^2 of the SDE:

    v = a x - 1/2 g^2 score,   so   score = 2 (a x - v) / g^2.

Every ``forward`` here is written for speed and for ``torch.compile`` / CUDA-graph capture: no
``.item()``, no Python branch on a tensor's value, no host synchronisation; the time embedding
is computed in the dtype of the input, and float32 and float64 both work.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn
from torch.nn import functional

from workbench.core.analytic import AnalyticMarginal
from workbench.core.mixture import GaussianMixture
from workbench.core.params import did_you_mean
from workbench.core.registry import Registry
from workbench.core.sde import SDE, LinearSDE, broadcast_time
from workbench.errors import ConfigError, WorkbenchError

__all__ = [
    "ACTIVATIONS",
    "make_activation",
    "TIME_EMBEDDINGS",
    "make_time_embedding",
    "TimeEmbedding",
    "GaussianFourierEmbedding",
    "SinusoidalEmbedding",
    "NETS",
    "MLPNet",
    "ResMLPNet",
    "UNet",
    "PARAMETERISATIONS",
    "Parameterisation",
    "ScoreOutput",
    "EpsOutput",
    "X0Output",
    "VelocityOutput",
    "ScoreModel",
    "AnalyticScoreModel",
    "MODEL_DEFAULTS",
    "ANALYTIC",
    "as_batch_time",
    "time_rows",
    "build_score_model",
    "count_parameters",
]

CoeffLike = Tensor | float

# --------------------------------------------------------------------------------------------
# activations and time
# --------------------------------------------------------------------------------------------
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
}


#: activations with an exact in-place form (same values, bit for bit, as the module's)
_INPLACE_ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.SiLU: lambda h: functional.silu(h, inplace=True),
    nn.ReLU: lambda h: functional.relu(h, inplace=True),
    nn.Tanh: torch.tanh_,
}


def apply_activation(act: nn.Module, h: Tensor) -> Tensor:
    """``act(h)`` for an ``h`` the caller owns (a fresh layer output nobody else holds).

    Without autograd (sampling, evaluation) it overwrites ``h`` where ``act`` has an in-place
    form: no new (batch x hidden) tensor per layer and one pass over memory less. On the CPU
    that is about a quarter of the default MLP's forward at 4096 particles, where the network
    is most of a sampling step. With autograd on, the module is called as it is (its backward
    needs its input).
    """
    if not torch.is_grad_enabled():
        inplace = _INPLACE_ACTIVATIONS.get(type(act))
        if inplace is not None:
            return inplace(h)
    return act(h)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module; ConfigError("activation", ...) for an unknown name."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        hint = did_you_mean(name, ACTIVATIONS) if isinstance(name, str) else ""
        options = ", ".join(ACTIVATIONS)
        raise ConfigError(
            "activation", f"unknown activation {name!r}{hint}; choose one of: {options}"
        ) from None


def as_batch_time(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` (a number, a 0-d tensor or shape (batch,)) as a (batch,) tensor of x's dtype/device.

    ``expand`` makes a view rather than a copy, and nothing here reads a value back to the host.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(-1).expand(x.shape[0])


def time_rows(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` as the rows the time branch of a network must compute: shape (1,) when every sample
    has the same time, else (batch,); x's dtype and device.

    Within a sampling step every particle has the same t (the samplers pass a 0-d tensor), so
    the embedding and the Linear layers on it are computed for one row and broadcast, not for
    every particle: for the default MLP at 4096 particles that row replaces a (4096 x 128) @
    (128 x 256) product, as large as one hidden layer. "The same time" is read from the
    shape alone (one element, or a (batch,) view with stride 0, as made by ``expand``): no
    value is read back to the host and no comparison of values is made, so this stays free of
    synchronisation and traceable by ``torch.compile``; a (batch,) tensor of equal but separate
    values takes the per-sample path, which gives the same function.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.numel() == 1 or (t.ndim == 1 and t.stride(0) == 0 and t.shape[0] > 0):
        return t.reshape(-1)[:1]
    return t.reshape(-1).expand(x.shape[0])


def _affine_plus_rows(rows: Tensor, h: Tensor, layer: nn.Linear) -> Tensor:
    """layer(h) + rows, as one addmm: ``rows`` (1 or batch, out) is added by broadcasting, with
    the layer's bias folded into it (one pass over the batch fewer than Linear, then add)."""
    return torch.addmm(rows + layer.bias, h, layer.weight.t())


class TimeEmbedding(nn.Module):
    """Features of the diffusion time: (batch,) times in [0, T] -> (batch, embed_dim).

    Embeddings see t / T, so a network's behaviour does not depend on the unit of time.
    """

    config_name: ClassVar[str] = ""

    def __init__(self, embed_dim: int, *, T: float = 1.0, fourier_scale: float = 16.0) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ConfigError("embed_dim", f"must be >= 1, got {embed_dim}")
        self.embed_dim = int(embed_dim)
        self.T = float(T)


TIME_EMBEDDINGS: Registry[type[TimeEmbedding]] = Registry("time embedding", key="time_embedding")


@TIME_EMBEDDINGS.register("fourier")
class GaussianFourierEmbedding(TimeEmbedding):
    """Gaussian random Fourier features (Tancik et al. 2020; Song et al. 2021, appendix C):

        gamma(t) = [sin(2 pi W t/T), cos(2 pi W t/T)],  W_j ~ N(0, fourier_scale^2), fixed.

    ``W`` is a buffer, not a parameter: it is never trained but is saved in the state dict, so a
    restored checkpoint sees the same features it was trained with.
    """

    W: Tensor

    def __init__(self, embed_dim: int, *, T: float = 1.0, fourier_scale: float = 16.0) -> None:
        super().__init__(embed_dim, T=T, fourier_scale=fourier_scale)
        # an odd embed_dim gets one sine more than cosines (sliced off in forward)
        n_freq = (self.embed_dim + 1) // 2
        self.register_buffer("W", torch.randn(n_freq) * float(fourier_scale))

    def forward(self, t: Tensor) -> Tensor:
        arg = t.reshape(-1, 1) * ((2 * math.pi / self.T) * self.W.to(t.dtype))
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)[:, : self.embed_dim]


@TIME_EMBEDDINGS.register("sinusoidal")
class SinusoidalEmbedding(TimeEmbedding):
    """Transformer positional features (Vaswani et al. 2017; as in DDPM) of p = 1000 t/T:

    [sin(p w_i), cos(p w_i)],  w_i = 10000^(-i/(half - 1)),  i = 0 .. half - 1.
    """

    def forward(self, t: Tensor) -> Tensor:
        half = (self.embed_dim + 1) // 2
        # built in the graph (not a buffer) so it is exact in float64 and costs one tiny arange
        i = torch.arange(half, dtype=t.dtype, device=t.device)
        freqs = torch.exp(i * (-math.log(10000.0) / max(half - 1, 1)))
        arg = t.reshape(-1, 1) * (1000.0 / self.T) * freqs
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)[:, : self.embed_dim]


def make_time_embedding(
    name: str, embed_dim: int, *, T: float = 1.0, fourier_scale: float = 16.0
) -> TimeEmbedding:
    """The time embedding registered as ``name``; ConfigError("time_embedding", ...) if none."""
    return TIME_EMBEDDINGS.get(name)(embed_dim, T=T, fourier_scale=fourier_scale)


def label_embedding(num_classes: int, embed_dim: int) -> nn.Embedding | None:
    """Class features for a conditional network: ``num_classes + 1`` rows, the last one the
    null label (the unconditional score, for classifier-free guidance); None: unconditional."""
    return nn.Embedding(int(num_classes) + 1, embed_dim) if num_classes else None


def time_label_features(net: nn.Module, t: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
    """The time features of ``t`` (:func:`time_rows`), plus the label's where ``net`` has a
    label embedding and ``y`` (one class, or one per sample) is given: the class enters the
    network exactly where time does, so every block that sees time sees the class too."""
    emb: Tensor = net.embed(time_rows(t, x))  # type: ignore[operator]
    label = getattr(net, "label", None)
    if label is not None and y is not None:
        emb = emb + label(y)
    return emb


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------
NETS: Registry[type[nn.Module]] = Registry("network", key="kind")


class _VectorNet(nn.Module):
    """Networks that see each sample as one flat vector (any sample shape)."""

    @classmethod
    def from_params(
        cls,
        sample_shape: tuple[int, ...],
        *,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "silu",
        time_embedding: str = "fourier",
        embed_dim: int = 128,
        fourier_scale: float = 16.0,
        channels: int = 32,
        T: float = 1.0,
        num_classes: int = 0,
    ) -> _VectorNet:
        return cls(
            math.prod(sample_shape),
            hidden=hidden,
            depth=depth,
            activation=activation,
            time_embedding=time_embedding,
            embed_dim=embed_dim,
            fourier_scale=fourier_scale,
            T=T,
            num_classes=num_classes,
        )


@NETS.register("mlp")
class MLPNet(_VectorNet):
    """x (flattened) -> ``depth`` hidden layers of width ``hidden`` -> x's shape.

    The time features enter once, through a Linear added to the first hidden pre-activation: as
    expressive as concatenating them to the input (it is the same affine map) and cheaper.
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "silu",
        time_embedding: str = "fourier",
        embed_dim: int = 128,
        fourier_scale: float = 16.0,
        T: float = 1.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.embed = make_time_embedding(
            time_embedding, embed_dim, T=T, fourier_scale=fourier_scale
        )
        self.label = label_embedding(num_classes, embed_dim)
        self.inp = nn.Linear(dim, hidden)
        self.time = nn.Linear(embed_dim, hidden)
        self.act = make_activation(activation)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        # the first layer is inp(x) + time(emb(t)): the t part is one row when t is shared;
        # with a row per sample (training) it is one addmm on [x, emb], not two and an add
        emb = time_label_features(self, t, x, y)
        flat = x.reshape(x.shape[0], -1)
        if emb.shape[0] == 1:
            pre = _affine_plus_rows(self.time(emb), flat, self.inp)
        else:
            weight = torch.cat([self.inp.weight, self.time.weight], dim=1)
            pre = torch.addmm(self.inp.bias + self.time.bias, torch.cat([flat, emb], 1), weight.t())
        h = apply_activation(self.act, pre)
        for layer in self.hidden:
            h = apply_activation(self.act, layer(h))
        return self.out(h).reshape(x.shape)


class _ResMLPBlock(nn.Module):
    """h + Lin2(act(Lin1(LayerNorm(h)) + Lin_t(temb))): pre-norm, time added inside."""

    def __init__(self, hidden: int, embed_dim: int, activation: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.lin1 = nn.Linear(hidden, hidden)
        self.time = nn.Linear(embed_dim, hidden)
        self.act = make_activation(activation)
        self.lin2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        # temb may be one row shared by every sample (see time_rows)
        pre = _affine_plus_rows(self.time(temb), self.norm(h), self.lin1)
        return h + self.lin2(apply_activation(self.act, pre))


@NETS.register("resmlp")
class ResMLPNet(_VectorNet):
    """Linear in -> ``depth`` residual blocks of width ``hidden`` -> LayerNorm, act, Linear out.

    The residual path keeps gradients alive through deep stacks, and the time features are
    injected into every block, not only the first layer as in :class:`MLPNet`.
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "silu",
        time_embedding: str = "fourier",
        embed_dim: int = 128,
        fourier_scale: float = 16.0,
        T: float = 1.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.embed = make_time_embedding(
            time_embedding, embed_dim, T=T, fourier_scale=fourier_scale
        )
        self.label = label_embedding(num_classes, embed_dim)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            _ResMLPBlock(hidden, embed_dim, activation) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(hidden)
        self.act = make_activation(activation)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        temb = time_label_features(self, t, x, y)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, temb)
        return self.out(apply_activation(self.act, self.norm(h))).reshape(x.shape)


def _groups(channels: int) -> int:
    # GroupNorm needs a divisor of the channel count; up to 8 groups suits these small widths.
    return math.gcd(channels, 8)


class _ResBlock(nn.Module):
    """GroupNorm, SiLU, conv3x3, + time, GroupNorm, SiLU, conv3x3; plus a (1x1) skip path."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(temb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        y = self.conv1(self.act(self.norm1(h)))
        y = y + self.time(temb)[:, :, None, None]
        y = self.conv2(self.act(self.norm2(y)))
        return self.skip(h) + y


@NETS.register("unet")
class UNet(nn.Module):
    """A small DDPM-style U-Net (Ho et al. 2020) for images (c, h, w).

    Three resolutions of widths (C, 2C, 2C), C = ``channels``, with stride-2 convolutions down
    (h -> ceil(h/2)), one residual block per level on the way down and up, two at the bottom,
    skip connections by concatenation, and the time embedding fed to every block. Upsampling
    goes to the skip's exact size (nearest neighbour, then a conv), so odd sizes work:
    28 -> 14 -> 7 and back, or 7 -> 4 -> 2 and back. ``hidden``, ``depth`` and ``activation``
    are not used.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        channels: int = 32,
        time_embedding: str = "fourier",
        embed_dim: int = 128,
        fourier_scale: float = 16.0,
        T: float = 1.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        c = int(channels)
        temb_dim = 4 * c
        self.embed = make_time_embedding(
            time_embedding, embed_dim, T=T, fourier_scale=fourier_scale
        )
        self.label = label_embedding(num_classes, embed_dim)
        # the trailing SiLU is shared by every block's time projection
        self.time_mlp = nn.Sequential(
            nn.Linear(embed_dim, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim), nn.SiLU()
        )
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down = nn.ModuleList([_ResBlock(c, c, temb_dim), _ResBlock(c, 2 * c, temb_dim)])
        self.downsample = nn.ModuleList(
            [
                nn.Conv2d(c, c, 3, stride=2, padding=1),
                nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            ]
        )
        self.mid = nn.ModuleList(
            [_ResBlock(2 * c, 2 * c, temb_dim), _ResBlock(2 * c, 2 * c, temb_dim)]
        )
        # in the order they are used: deepest level first
        self.upconv = nn.ModuleList(
            [nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.Conv2d(2 * c, 2 * c, 3, padding=1)]
        )
        self.up = nn.ModuleList([_ResBlock(4 * c, 2 * c, temb_dim), _ResBlock(3 * c, c, temb_dim)])
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.act = nn.SiLU()
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)

    @classmethod
    def from_params(
        cls,
        sample_shape: tuple[int, ...],
        *,
        hidden: int = 256,
        depth: int = 3,
        activation: str = "silu",
        time_embedding: str = "fourier",
        embed_dim: int = 128,
        fourier_scale: float = 16.0,
        channels: int = 32,
        T: float = 1.0,
        num_classes: int = 0,
    ) -> UNet:
        if len(sample_shape) != 3:
            raise ConfigError(
                "kind",
                "the 'unet' network needs image data (samples shaped (channels, height, "
                f"width)), got samples shaped {tuple(sample_shape)}; use 'mlp' or 'resmlp'",
            )
        return cls(
            int(sample_shape[0]),
            channels=channels,
            time_embedding=time_embedding,
            embed_dim=embed_dim,
            fourier_scale=fourier_scale,
            T=T,
            num_classes=num_classes,
        )

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        # one row when t is shared (time_rows); it broadcasts over the batch in every block
        temb = self.time_mlp(time_label_features(self, t, x, y))
        h = self.conv_in(x)
        skips = []
        for block, down in zip(self.down, self.downsample, strict=True):
            h = block(h, temb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, temb)
        for conv, block, skip in zip(self.upconv, self.up, reversed(skips), strict=True):
            h = conv(nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = block(torch.cat([h, skip], dim=1), temb)
        return self.conv_out(self.act(self.norm_out(h)))


# --------------------------------------------------------------------------------------------
# output parameterisations
# --------------------------------------------------------------------------------------------
def _coeff(c: CoeffLike, x: Tensor) -> Tensor:
    return broadcast_time(torch.as_tensor(c, dtype=x.dtype, device=x.device), x)


class Parameterisation:
    """What the network's raw output means, for a linear SDE with p_t(x|x0) = N(m x0, s^2 I).

    ``m`` and ``s`` may be numbers, 0-d tensors or per-sample (batch,) tensors; they are
    broadcast against ``x`` here. A parameterisation that also reads the SDE's rates (the
    velocity: a(t) and g(t)^2) says so by ``needs_rates`` and takes them as the keywords ``a``
    and ``g2``; the others accept and ignore them, so a caller may pass them to any.
    """

    config_name: ClassVar[str] = ""
    #: whether the conversion needs m(t) and s(t), i.e. a linear SDE
    needs_linear: ClassVar[bool] = True
    #: whether the conversions read a(t) and g(t)^2 (keywords ``a``, ``g2``)
    needs_rates: ClassVar[bool] = False

    @staticmethod
    def to_score(
        out: Tensor,
        x: Tensor,
        m: CoeffLike,
        s: CoeffLike,
        *,
        a: CoeffLike | None = None,
        g2: CoeffLike | None = None,
    ) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def to_sigma_score(
        out: Tensor,
        x: Tensor,
        m: CoeffLike,
        s: CoeffLike,
        *,
        a: CoeffLike | None = None,
        g2: CoeffLike | None = None,
    ) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def from_score(
        score: Tensor,
        x: Tensor,
        m: CoeffLike,
        s: CoeffLike,
        *,
        a: CoeffLike | None = None,
        g2: CoeffLike | None = None,
    ) -> Tensor:
        raise NotImplementedError

    @classmethod
    def to_velocity(
        cls, out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, *, a: CoeffLike, g2: CoeffLike
    ) -> Tensor:
        """The probability-flow velocity v = a x - 1/2 g^2 score (Song et al. 2021, eq. 13)."""
        score = cls.to_score(out, x, m, s, a=a, g2=g2)
        return _coeff(a, x) * x - 0.5 * _coeff(g2, x) * score


PARAMETERISATIONS: Registry[type[Parameterisation]] = Registry(
    "output parameterisation", key="output"
)


@PARAMETERISATIONS.register("score")
class ScoreOutput(Parameterisation):
    """The network predicts grad log p_t itself (the only choice for a non-linear SDE)."""

    needs_linear = False

    @staticmethod
    def to_score(out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return out

    @staticmethod
    def to_sigma_score(out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return _coeff(s, x) * out

    @staticmethod
    def from_score(score: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return score


@PARAMETERISATIONS.register("eps")
class EpsOutput(Parameterisation):
    """The network predicts the noise: score = -eps / s, so s * score = -eps exactly.

    With x = m x0 + s z, DSM's target for s * score is -z (Vincent 2011; Ho et al. 2020).
    """

    @staticmethod
    def to_score(out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return -out / _coeff(s, x)

    @staticmethod
    def to_sigma_score(out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return -out

    @staticmethod
    def from_score(score: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return -_coeff(s, x) * score


@PARAMETERISATIONS.register("x0")
class X0Output(Parameterisation):
    """The network predicts the clean data E[x0 | x]; by Tweedie's formula

    E[x0 | x_t] = (x_t + s^2 grad log p_t(x_t)) / m,  so  score = -(x - m x0_hat) / s^2.
    """

    @staticmethod
    def to_score(out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        s_ = _coeff(s, x)
        return -(x - _coeff(m, x) * out) / (s_ * s_)

    @staticmethod
    def to_sigma_score(out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        return -(x - _coeff(m, x) * out) / _coeff(s, x)

    @staticmethod
    def from_score(score: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, **_: Any) -> Tensor:
        s_ = _coeff(s, x)
        return (x + s_ * s_ * score) / _coeff(m, x)


def _rates(a: CoeffLike | None, g2: CoeffLike | None) -> tuple[CoeffLike, CoeffLike]:
    if a is None or g2 is None:
        raise WorkbenchError(
            "the velocity output converts through a(t) and g(t)^2; pass them as a=, g2="
        )
    return a, g2


@PARAMETERISATIONS.register("v")
class VelocityOutput(Parameterisation):
    """The network predicts the probability-flow velocity (flow matching):

        v(x, t) = a(t) x - 1/2 g(t)^2 grad log p_t(x),   so   score = 2 (a x - v) / g^2,

    exactly, for a linear SDE dX = a X dt + g dW. Its regression target is the conditional
    velocity m' x0 + s' z of x_t = m x0 + s z (m' = a m, s s' = a s^2 + g^2/2), whose mean
    given x_t is v. g(t) > 0 on (0, T] for every built-in SDE; at t = 0 the conversion is 0/0
    and t >= eps > 0 is what training and sampling use.
    """

    needs_rates = True

    @staticmethod
    def to_score(
        out: Tensor,
        x: Tensor,
        m: CoeffLike,
        s: CoeffLike,
        *,
        a: CoeffLike | None = None,
        g2: CoeffLike | None = None,
    ) -> Tensor:
        a, g2 = _rates(a, g2)
        return 2.0 * (_coeff(a, x) * x - out) / _coeff(g2, x)

    @staticmethod
    def to_sigma_score(
        out: Tensor,
        x: Tensor,
        m: CoeffLike,
        s: CoeffLike,
        *,
        a: CoeffLike | None = None,
        g2: CoeffLike | None = None,
    ) -> Tensor:
        a, g2 = _rates(a, g2)
        return (2.0 * _coeff(s, x) / _coeff(g2, x)) * (_coeff(a, x) * x - out)

    @staticmethod
    def from_score(
        score: Tensor,
        x: Tensor,
        m: CoeffLike,
        s: CoeffLike,
        *,
        a: CoeffLike | None = None,
        g2: CoeffLike | None = None,
    ) -> Tensor:
        a, g2 = _rates(a, g2)
        return _coeff(a, x) * x - 0.5 * _coeff(g2, x) * score

    @classmethod
    def to_velocity(
        cls, out: Tensor, x: Tensor, m: CoeffLike, s: CoeffLike, *, a: CoeffLike, g2: CoeffLike
    ) -> Tensor:
        return out


# --------------------------------------------------------------------------------------------
# score models
# --------------------------------------------------------------------------------------------
_NO_RATES: dict[str, Tensor] = {}


def _check_output(output: str, sde: SDE) -> type[Parameterisation]:
    param = PARAMETERISATIONS.get(output)
    if param.needs_linear and not isinstance(sde, LinearSDE):
        raise ConfigError(
            "output",
            f"output {output!r} needs a linear SDE (with Gaussian transitions "
            f"N(m(t) x0, s(t)^2 I)); {sde.describe()} is not linear: use output = 'score'",
        )
    return param


class ScoreModel(nn.Module):
    """A network plus the SDE and the meaning of its output; ``forward`` gives the score.

    ``forward`` is the score (not the raw output) so that DDP, ``torch.compile`` and EMA copies,
    which all wrap ``forward``, see the quantity every loss and sampler consumes.
    """

    sample_shape: tuple[int, ...]  # set by build_score_model

    _null: Tensor

    def __init__(self, net: nn.Module, sde: SDE, output: str = "eps") -> None:
        super().__init__()
        param = _check_output(output, sde)
        self.linear = isinstance(sde, LinearSDE)
        self.net = net
        self.sde = sde
        self.output = output
        self.parameterisation = param
        label = getattr(net, "label", None)
        #: classes of a conditional network (0: unconditional); label num_classes is the null
        self.num_classes = 0 if label is None else int(label.num_embeddings) - 1
        self.register_buffer("_null", torch.tensor(self.num_classes), persistent=False)

    def _net(self, x: Tensor, t: Tensor, y: Tensor | int | None) -> Tensor:
        # an unconditional network is called exactly as before labels existed
        if not self.num_classes:
            return self.net(x, t)
        return self.net(x, t, self._null if y is None else torch.as_tensor(y, device=x.device))

    def raw(self, x: Tensor, t: Tensor | float, y: Tensor | int | None = None) -> Tensor:
        """The network's output, as it is (score, eps or x0 by ``output``)."""
        return self._net(x, time_rows(t, x), y)

    def _coeffs(self, t: Tensor) -> tuple[Tensor | float, Tensor | float]:
        if not self.linear:
            return 1.0, 1.0  # unused: only the "score" output is allowed here
        return cast(LinearSDE, self.sde).marginal_coeffs(t)  # self.linear: it is one

    def _score_coeffs(self, t: Tensor) -> tuple[Tensor | float, Tensor | float]:
        # only what to_score reads (m is unused by eps, both by score): fewer ops per step
        if not self.linear or self.output == "score":
            return 1.0, 1.0
        if self.output == "eps":
            return 1.0, self.sde.std(t)  # type: ignore[attr-defined]
        if self.parameterisation.needs_rates:
            return 1.0, 1.0  # the velocity's to_score reads a(t) and g(t)^2 only
        return self.sde.marginal_coeffs(t)  # type: ignore[attr-defined]

    def _rate_coeffs(self, t: Tensor) -> dict[str, Tensor]:
        """{"a": a(t), "g2": g(t)^2} where the parameterisation reads them, else nothing."""
        if not self.parameterisation.needs_rates:
            return _NO_RATES
        g = self.sde.diffusion(t)
        return {"a": self.sde.drift_coeff(t), "g2": g * g}  # type: ignore[attr-defined]

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor | int | None = None) -> Tensor:
        """grad_x log p_t(x) as the model estimates it; with a class ``y`` (one, or one per
        sample) of a conditional network, grad_x log p_t(x | y) (None: the null label)."""
        # (1,) for a time shared by the batch: m(t), s(t) and the time branch once, broadcast
        t = time_rows(t, x)
        m, s = self._score_coeffs(t)
        out = self._net(x, t, y)
        return self.parameterisation.to_score(out, x, m, s, **self._rate_coeffs(t))

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self(x, t)

    def sigma_score(self, x: Tensor, t: Tensor | float, y: Tensor | int | None = None) -> Tensor:
        """s(t) * score, without dividing by s where the parameterisation allows (eps, x0).

        DSM with lambda(t) = s(t)^2 is E ||s score + z||^2, finite as t -> 0 this way.
        """
        if not self.linear:
            raise WorkbenchError(f"s(t) * score needs a linear SDE; {self.sde.describe()} is not")
        t = time_rows(t, x)
        m, s = self._coeffs(t)
        out = self._net(x, t, y)
        return self.parameterisation.to_sigma_score(out, x, m, s, **self._rate_coeffs(t))

    def velocity(self, x: Tensor, t: Tensor | float, y: Tensor | int | None = None) -> Tensor:
        """v(x, t) = a(t) x - 1/2 g(t)^2 score: the probability-flow ODE's velocity, which flow
        matching regresses. With ``output = "v"`` it is the network's output as it is (no
        division by g^2); otherwise it is converted from the score. ``y`` as in ``forward``."""
        if not self.linear:
            raise WorkbenchError(f"the velocity needs a linear SDE; {self.sde.describe()} is not")
        t = time_rows(t, x)
        m, s = self._coeffs(t)
        g = self.sde.diffusion(t)
        a = self.sde.drift_coeff(t)  # type: ignore[attr-defined]
        return self.parameterisation.to_velocity(self._net(x, t, y), x, m, s, a=a, g2=g * g)


def _mixture_to(mixture: GaussianMixture, device: torch.device) -> GaussianMixture:
    # a shallow copy with its tensors moved: reuses the eigendecomposition instead of
    # recomputing (and re-validating, with host syncs) it on the device
    moved = copy.copy(mixture)
    for name in ("weights", "means", "covs", "_eigvals", "_eigvecs"):
        object.__setattr__(moved, name, getattr(mixture, name).to(device))
    return moved


class AnalyticScoreModel(nn.Module):
    """The exact score of Gaussian-mixture data under a linear SDE, behind the model interface.

    ``mixture`` is in model (normalised) units, flattened: any input whose samples hold
    ``mixture.dim`` values (vectors or images) is accepted. The score is computed in float64
    and returned in the input's dtype. There is nothing to train: ``parameters()`` is empty;
    a dummy buffer lets ``.to(device)`` and ``next(buffers())`` behave as for a network.
    """

    output: ClassVar[str] = "score"
    sample_shape: tuple[int, ...]  # set by build_score_model

    def __init__(self, mixture: GaussianMixture, sde: SDE) -> None:
        super().__init__()
        if not isinstance(sde, LinearSDE):
            raise ConfigError(
                "kind",
                f"the 'analytic' model needs a linear SDE (Gaussian transitions); "
                f"{sde.describe()} is not linear",
            )
        self.mixture = mixture
        self.sde = sde
        self.linear = True
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self._truth: dict[torch.device, AnalyticMarginal] = {}

    @property
    def dim(self) -> int:
        return self.mixture.dim

    def marginal(self, device: torch.device | str = "cpu") -> AnalyticMarginal:
        """The exact p_t, with the mixture's tensors on ``device`` (cached per device)."""
        device = torch.device(device)
        truth = self._truth.get(device)
        if truth is None:
            truth = AnalyticMarginal(_mixture_to(self.mixture, device), self.sde)
            self._truth[device] = truth
        return truth

    @property
    def num_classes(self) -> int:
        """Each mixture component is a class (the labels of mixture data sets)."""
        return self.mixture.n_components

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor | int | None = None) -> Tensor:
        """grad_x log p_t(x), exactly; with a class ``y`` (one, or one per sample) the
        conditional grad_x log p_t(x | y), the score of component y alone under the SDE."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        t64 = as_batch_time(t, flat)
        truth = self.marginal(x.device)
        if y is None:
            score = truth.score(flat, t64)
        else:
            m, s = truth.sde.marginal_coeffs(t64)
            score = truth.mixture.component_score(flat, torch.as_tensor(y, device=x.device), m, s)
        return score.reshape(x.shape).to(x.dtype)

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self(x, t)

    def raw(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self(x, t)

    def sigma_score(self, x: Tensor, t: Tensor | float) -> Tensor:
        """s(t) * grad_x log p_t(x), multiplied in float64."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        t64 = as_batch_time(t, flat)
        s = self.sde.std(t64)
        score = self.marginal(x.device).score(flat, t64)
        return (broadcast_time(s, score) * score).reshape(x.shape).to(x.dtype)


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------
ANALYTIC = "analytic"

#: the [model] keys a score model is built from, with their defaults
MODEL_DEFAULTS: dict[str, Any] = {
    "hidden": 256,
    "depth": 3,
    "activation": "silu",
    "output": "eps",
    "time_embedding": "fourier",
    # 32, not score_sde's 128: learns as well (README, "What the defaults study showed") and
    # costs a quarter of the per-particle time branch in training, where every t differs
    "embed_dim": 32,
    "fourier_scale": 16.0,
    "channels": 32,
}

_NET_KEYS = (
    "hidden",
    "depth",
    "activation",
    "time_embedding",
    "embed_dim",
    "fourier_scale",
    "channels",
)


def _mixture_data_names() -> str:
    # imported here: the data module is only needed to word this message
    from workbench.core.data import DATASETS, MixtureDataSet

    return ", ".join(name for name, cls in DATASETS.items() if issubclass(cls, MixtureDataSet))


def _build_analytic(
    sde: SDE, sample_shape: tuple[int, ...], mixture: GaussianMixture | None
) -> AnalyticScoreModel:
    if mixture is None:
        raise ConfigError(
            "kind",
            f"the 'analytic' model needs Gaussian-mixture data ({_mixture_data_names()}), "
            "whose exact score is known; use 'mlp', 'resmlp' or 'unet' for other data",
        )
    if math.prod(sample_shape) != mixture.dim:
        raise ValueError(
            f"samples shaped {tuple(sample_shape)} hold {math.prod(sample_shape)} values; "
            f"the mixture has dimension {mixture.dim}"
        )
    model = AnalyticScoreModel(mixture, sde)
    model.sample_shape = tuple(sample_shape)
    return model


def build_score_model(
    kind: str,
    params: Mapping[str, Any],
    sde: SDE,
    sample_shape: tuple[int, ...],
    mixture: GaussianMixture | None = None,
    num_classes: int = 0,
) -> nn.Module:
    """The score model for ``[model] kind`` and its keys, for samples shaped ``sample_shape``.

    ``params`` holds the other [model] keys (missing ones take :data:`MODEL_DEFAULTS`; keys
    not used by networks, such as ``kind``, are ignored). ``kind = "analytic"`` needs the data's
    ``mixture`` in model units and a linear SDE. Errors are :class:`ConfigError` with the key
    unprefixed (the caller adds ``model.``).
    """
    sample_shape = tuple(int(n) for n in sample_shape)
    if kind == ANALYTIC:
        return _build_analytic(sde, sample_shape, mixture)
    if kind not in NETS:
        options = [*NETS.names(), ANALYTIC]
        hint = did_you_mean(kind, options) if isinstance(kind, str) else ""
        raise ConfigError(
            "kind", f"unknown network {kind!r}{hint}; choose one of: {', '.join(options)}"
        )
    p = {**MODEL_DEFAULTS, **{k: v for k, v in params.items() if k in MODEL_DEFAULTS}}
    # checked before the network is built: a wrong output should not cost a U-Net's init
    _check_output(p["output"], sde)
    net = NETS.get(kind).from_params(  # type: ignore[attr-defined]
        sample_shape, **{k: p[k] for k in _NET_KEYS}, T=sde.T, num_classes=num_classes
    )
    model = ScoreModel(net, sde, p["output"])
    model.sample_shape = sample_shape
    return model


def count_parameters(model: nn.Module) -> int:
    """The number of trainable scalars (parameters with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
