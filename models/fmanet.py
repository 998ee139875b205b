"""FMANet, the Fusion Motion Attention Network (arXiv 2510.07810), reconstructed.

The paper describes FMANet in prose: both motion phases (onset->apex and apex->offset) enter the
network, a learnable magnitude modulation replaces MM-COF's fixed threshold, a fusion motion
attention replaces COF's fixed weights theta1/theta2, and an attention over the fused features
precedes classification. Its layers are not published, so every piece below is a documented choice
and a configuration switch, so that a study can ablate each one.

Input: the ``two_phase_stack`` representation, ``in_chans = 2 * phase_channels`` (default 6):
channels ``0..2`` are phase 1 (u1, v1, m1), ``3..5`` phase 2 (u2, v2, m2); the magnitude sits at
index ``magnitude_index`` (default 2) *within* each phase.

Pipeline (N samples, S = number of active streams):

0. **Input normalisation** (``input_norm``): ``scale`` divides each channel the streams read by its
   root mean square, ``standard`` subtracts its mean and divides by its standard deviation, ``none``
   passes raw flows (pixels). The statistics are buffers fitted by :meth:`FMANet.fit_input_stats` on
   the fold's TRAINING rows only (``bench.training.fold.train_and_predict`` calls it on the fit indices before
   ``fit``; validation and test rows never reach it); identity until it is called.
1. **Stream encoders** (``streams``, ``backbone``, ``shared_weights``). One encoder per phase:
   ``backbone="cnn"`` is :class:`models.layers.SmallEncoder` (conv-BN-ReLU blocks of ``widths``,
   2x2 max-pool between them, output stride 4); ``backbone="timm:<arch>"`` uses that timm model's
   ``forward_features`` (``backbone_params`` go to ``create_model``, e.g. ``small_input_stem``).
   ``shared_weights=True`` runs both phases through one stream module (encoder *and* its
   modulation), default False (separate weights). ``streams=onset_apex|apex_offset`` keeps one
   phase: the network is then a single-phase model, accepting either ``phase_channels`` input
   (the phase as given, e.g. ``single_phase``) or the full stack, from which it takes that phase;
   ``fusion`` and ``shared_weights`` have no effect then (no fusion module is built).
   ``streams=auto`` picks ``both`` for the two-phase stack and the one phase a single-phase input
   carries, so one study item (one model label) covers the dual-stream network and its single-stream
   baseline (the main study's significance section compares them).
2. **Magnitude modulation** per stream (``modulation``):
   ``spatial``: gate ``g = sigmoid(conv3x3(relu(conv3x3(m))))`` from the phase's magnitude channel,
   at input resolution, multiplying all of the stream's input channels before the encoder (the
   learnable counterpart of MM-COF's mask ``1[Mc >= tau]`` applied to u, v, Mc);
   ``se``: squeeze-excitation on the encoder's output features (channel gates, ``se_reduction``);
   the suite's default (``bench/conf/model/fmanet.yaml``) is ``se``, chosen on validation subjects; the
   constructor's default stays ``spatial``, the paper's literal reading, for library callers;
   ``none``: no modulation.
3. **Fusion motion attention** over the two streams' feature maps F1, F2 (``fusion``):
   ``attention``: ``w = softmax(MLP([GAP(F1), GAP(F2)]))`` per sample (MLP: Linear(2C, ``fusion_hidden``)
   -> ReLU -> Linear(., 2)), fused ``= w1 F1 + w2 F2`` (learned, per-sample replacement of COF's theta);
   ``sum``: ``F1 + F2`` (fixed equal weights, no parameters);
   ``concat``: ``[F1, F2]`` -> 1x1 conv-BN-ReLU back to C channels (learned, not per-sample);
   ``cross_attention``: each phase's positions attend to the other's (DIANet-style,
   :class:`_CrossAttentionFusion`, residual), then the ``attention`` weights fuse them.
4. **Spatial attention** (``spatial_attention``): CBAM-style ``a = sigmoid(conv_k([mean_c F, max_c F]))``,
   ``F <- F * a``; then the head (``head``): ``gap`` global average pooling, or ``grid`` average
   pooling to ``head_grid`` x ``head_grid`` cells, flattened (STSTNet's head keeps a 5x5 grid too);
   dropout (``dropout``) and a linear classifier.

Diagnosis behind the defaults (docs/fmanet.md; curves and choice on
validation subjects drawn from the training subjects only, studies/fmanet_search*.yaml). The
first reconstruction (``head=gap``, ``input_norm=none``, ``modulation=spatial``, widths 16-32-64)
*under*-fitted: training loss 0.29 after 60 epochs where STSTNet reached 0.10, validation UF1 0.65
vs 0.83. Global average pooling threw away *where* the motion is, and the synthetic classes (like
AUs) differ by facial region: ``head=grid`` alone took the training loss to 0.02 and validation UF1
to 0.88. Raw flows of ~0.1-0.5 px (at 28 px) made the first epochs slow (validation UF1 0.17 after
10 epochs); ``input_norm=scale`` gave 0.58 by then, so a short budget suffices. Within the main
study's time budget, widths 8-16-32 with ``modulation=se`` (MicroAttNet's squeeze-excitation; the
spatial gate was ~35% of the step time) for 30 epochs at lr 3e-3 scored the best validation UF1
(0.89, STSTNet 0.79 on the same splits). ``modulation=spatial`` remains the literal reading of the
paper's magnitude modulation, a switch and the constructor's default.

``forward(x, return_aux=True)`` returns ``(logits, aux)`` with
``aux["fusion_weights"]``: (N, 2) softmax weights (phase 1, phase 2), or None unless
``fusion=attention|cross_attention`` with both streams; ``aux["attention"]``: (N, h, w) spatial attention map or
None; ``aux["gates"]``: (N, S, H, W) input gates for ``spatial``, (N, S, C) channel gates for
``se``, None for ``none``. Works at any input size (every pooling is global or adaptive).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from models.layers import MagnitudeGate, SmallEncoder, SpatialAttention, SqueezeExcite, conv_bn_act
from models.registry import register_model

STREAMS = ("both", "onset_apex", "apex_offset", "auto")
MODULATIONS = ("none", "spatial", "se")
FUSIONS = ("attention", "sum", "concat", "cross_attention")
INPUT_NORMS = ("none", "scale", "standard")
HEADS = ("gap", "grid")


def _choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"fmanet: {name}={value!r} is not one of {', '.join(allowed)}")
    return value


class _TimmFeatures(nn.Module):
    """A timm model reduced to ``forward_features`` (N, C, h, w)."""

    def __init__(self, arch: str, in_chans: int, **params):
        super().__init__()
        from models.timm_models import timm_model  # lazy: timm is only needed for this option

        self.model = timm_model(arch, in_chans=in_chans, num_classes=0, global_pool="", **params)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():  # probe: num_features is not the forward_features width for every arch
            self.num_features = int(self.model.forward_features(torch.zeros(1, in_chans, 32, 32)).shape[1])
        self.model.train(was_training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class _PhaseStream(nn.Module):
    """One phase: [magnitude gate] -> encoder -> [squeeze-excitation]."""

    def __init__(self, phase_channels, magnitude_index, modulation, backbone, widths, backbone_params,
                 gate_hidden, se_reduction):
        super().__init__()
        self.magnitude_index = magnitude_index
        if backbone == "cnn":
            self.encoder: nn.Module = SmallEncoder(phase_channels, widths)
        elif isinstance(backbone, str) and backbone.startswith("timm:"):
            self.encoder = _TimmFeatures(backbone.split(":", 1)[1], phase_channels, **(backbone_params or {}))
        else:
            raise ValueError(f"fmanet: backbone={backbone!r} is neither 'cnn' nor 'timm:<arch>'")
        self.num_features = self.encoder.num_features
        self.gate = MagnitudeGate(gate_hidden) if modulation == "spatial" else None
        self.se = SqueezeExcite(self.num_features, se_reduction) if modulation == "se" else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        gate = None
        if self.gate is not None:
            g = self.gate(x[:, self.magnitude_index : self.magnitude_index + 1])
            x = x * g
            gate = g[:, 0]
        f = self.encoder(x)
        if self.se is not None:
            f, gate = self.se(f)
        return f, gate


class _FusionAttention(nn.Module):
    """Per-sample softmax weights over the phases from their pooled features."""

    def __init__(self, channels: int, n_phases: int = 2, hidden: int = 32):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_phases * channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, n_phases))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.softmax(self.mlp(torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1)), dim=1)
        fused = sum(w[:, i, None, None, None] * f for i, f in enumerate(feats))
        return fused, w


class _CrossAttentionFusion(nn.Module):
    """Mutual cross-attention between the phases (DIANet-style), then the per-sample phase weights.

    Tokens are the h*w positions of each stream's map. Phase i attends to phase j:
    ``F_i' = F_i + W_o softmax(Q_i K_j^T / sqrt(d)) V_j`` (1x1 projections to ``d = hidden`` shared by
    both directions), then ``fused = w1 F1' + w2 F2'`` with ``w`` from :class:`_FusionAttention`, so the
    learned fusion weights stay reported.
    """

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.q = nn.Conv2d(channels, hidden, 1, bias=False)
        self.k = nn.Conv2d(channels, hidden, 1, bias=False)
        self.v = nn.Conv2d(channels, hidden, 1, bias=False)
        self.o = nn.Conv2d(hidden, channels, 1, bias=False)
        self.scale = float(hidden) ** -0.5
        self.weights = _FusionAttention(channels, 2, hidden)

    def _attend(self, fq: torch.Tensor, fkv: torch.Tensor) -> torch.Tensor:
        n, _, h, w = fq.shape
        q = self.q(fq).flatten(2).transpose(1, 2)  # (N, hw, d)
        k, v = self.k(fkv).flatten(2), self.v(fkv).flatten(2).transpose(1, 2)  # (N, d, hw), (N, hw, d)
        a = torch.softmax(torch.bmm(q, k) * self.scale, dim=-1)
        out = torch.bmm(a, v).transpose(1, 2).reshape(n, -1, h, w)
        return fq + self.o(out)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        f1, f2 = feats
        return self.weights([self._attend(f1, f2), self._attend(f2, f1)])


def _resolve_streams(streams: str, in_chans: int, phase_channels: int, channels: Sequence[str] | None) -> str:
    """Check ``streams``; ``auto`` becomes both phases when the input has both, else the one it carries."""
    _choice("streams", streams, STREAMS)
    if streams != "auto":
        return streams
    if in_chans == 2 * phase_channels:
        return "both"
    if in_chans == phase_channels:
        late = channels is not None and all(str(c).endswith("2") for c in channels)
        return "apex_offset" if late else "onset_apex"
    raise ValueError(f"fmanet: streams='auto' takes one phase ({phase_channels} channels) or the "
                     f"two-phase stack ({2 * phase_channels}), got in_chans={in_chans}")


def _stream_phases(streams: str, in_chans: int, phase_channels: int) -> list[int]:
    """The phase index each stream reads from the input (after checking ``in_chans`` fits ``streams``)."""
    if streams == "both":
        if in_chans != 2 * phase_channels:
            raise ValueError(
                f"fmanet: streams='both' needs the two-phase stack (in_chans={2 * phase_channels}: "
                f"{phase_channels} channels per phase), got in_chans={in_chans}"
            )
        return [0, 1]
    if in_chans not in (phase_channels, 2 * phase_channels):
        raise ValueError(
            f"fmanet: streams={streams!r} takes one phase ({phase_channels} channels) or the "
            f"two-phase stack ({2 * phase_channels}), got in_chans={in_chans}"
        )
    # with a single phase given, that phase sits at channel 0; from the stack, select it
    return [0] if in_chans == phase_channels else [0 if streams == "onset_apex" else 1]


class FMANet(nn.Module):
    def __init__(
        self,
        in_chans: int = 6,
        num_classes: int = 3,
        streams: str = "both",
        phase_channels: int = 3,
        magnitude_index: int = 2,
        backbone: str = "cnn",
        widths: Sequence[int] = (8, 16, 32),
        backbone_params: dict | None = None,
        shared_weights: bool = False,
        modulation: str = "spatial",
        gate_hidden: int = 8,
        se_reduction: int = 4,
        fusion: str = "attention",
        fusion_hidden: int = 32,
        spatial_attention: bool = True,
        attention_kernel: int = 7,
        dropout: float = 0.5,
        input_norm: str = "scale",
        head: str = "grid",
        head_grid: int = 3,
        channels: Sequence[str] | None = None,
    ):
        super().__init__()
        # Construction order is part of the numerics: modules draw their initial weights from torch's RNG
        # in the order streams -> fusion -> spatial attention -> classifier, so a seed gives the same init.
        streams = _resolve_streams(streams, in_chans, phase_channels, channels)
        self.streams_mode = streams
        self._check_options(input_norm, head, head_grid, modulation, fusion, magnitude_index, phase_channels)
        self.phase_channels, self.in_chans = phase_channels, in_chans
        self.phases = _stream_phases(streams, in_chans, phase_channels)
        self.fusion = fusion if len(self.phases) == 2 else "none"
        self.shared_weights = bool(shared_weights) and len(self.phases) == 2
        # The small CNN encoder's 2x2 max-pools are ~3x faster in NHWC on CPU (training step x0.73);
        # timm backbones (ResNets) measured slower in NHWC, so they keep NCHW. Read by bench.training.engine.
        self.preferred_memory_format = "channels_last" if backbone == "cnn" else "contiguous"
        c = self._build_streams(phase_channels, magnitude_index, backbone, widths, backbone_params,
                                gate_hidden, se_reduction)
        self._build_fusion(c, fusion_hidden)
        self._build_head(c, num_classes, spatial_attention, attention_kernel, dropout, head_grid)
        self._register_input_stats(phase_channels)

    def _check_options(self, input_norm, head, head_grid, modulation, fusion, magnitude_index, phase_channels) -> None:
        """Validate the string switches, ``head_grid`` and ``magnitude_index``; keep the switches."""
        self.input_norm = _choice("input_norm", input_norm, INPUT_NORMS)
        self.head = _choice("head", head, HEADS)
        if int(head_grid) < 1:
            raise ValueError(f"fmanet: head_grid={head_grid} must be >= 1")
        self.modulation = _choice("modulation", modulation, MODULATIONS)
        _choice("fusion", fusion, FUSIONS)
        if not 0 <= magnitude_index < phase_channels:
            raise ValueError(f"fmanet: magnitude_index={magnitude_index} outside a {phase_channels}-channel phase")

    def _build_streams(self, phase_channels, magnitude_index, backbone, widths, backbone_params,
                       gate_hidden, se_reduction) -> int:
        """One stream module per phase (one for both with ``shared_weights``); returns their feature width."""

        def make_stream() -> _PhaseStream:
            return _PhaseStream(phase_channels, magnitude_index, self.modulation, backbone, widths,
                                backbone_params, gate_hidden, se_reduction)

        n_modules = 1 if self.shared_weights else len(self.phases)
        self.stream_modules = nn.ModuleList(make_stream() for _ in range(n_modules))
        return self.stream_modules[0].num_features

    def _build_fusion(self, c: int, fusion_hidden: int) -> None:
        """The fusion module ``fusion`` asks for (None for ``sum`` and single-stream models)."""
        self.fuse: nn.Module | None = None
        if self.fusion == "attention":
            self.fuse = _FusionAttention(c, 2, fusion_hidden)
        elif self.fusion == "concat":
            self.fuse = conv_bn_act(2 * c, c, kernel_size=1)
        elif self.fusion == "cross_attention":
            self.fuse = _CrossAttentionFusion(c, fusion_hidden)

    def _build_head(self, c: int, num_classes: int, spatial_attention: bool, attention_kernel: int,
                    dropout: float, head_grid: int) -> None:
        """Spatial attention, pooling (global or a grid), dropout and the linear classifier."""
        self.spatial_attention = SpatialAttention(attention_kernel) if spatial_attention else None
        self.dropout = nn.Dropout(dropout)
        self.head_grid = int(head_grid) if self.head == "grid" else 1
        self.pool = nn.AdaptiveAvgPool2d(self.head_grid)
        self.classifier = nn.Linear(c * self.head_grid ** 2, num_classes)

    def _register_input_stats(self, phase_channels: int) -> None:
        """The ``input_norm`` buffers, identity until :meth:`fit_input_stats`."""
        # Per-channel statistics of the channels the streams read (phase by phase, so a single-stream
        # model has the same buffers on a 3- or 6-channel input).
        n_read = len(self.phases) * phase_channels
        self.register_buffer("input_shift", torch.zeros(n_read))
        self.register_buffer("input_scale", torch.ones(n_read))
        self.input_stats_fitted = False

    @torch.no_grad()
    def fit_input_stats(self, x) -> None:
        """Fit ``input_norm``'s per-channel statistics on ``x`` (N, C, H, W): the fold's TRAINING rows only.

        ``scale``: divide each channel by its root mean square (zero motion stays zero, signs kept);
        ``standard``: subtract the channel mean, divide by its standard deviation. A channel whose
        statistic is ~0 (constant zero) keeps scale 1. A no-op with ``input_norm="none"``.
        ``bench.training.fold.train_and_predict`` calls it on the fit indices before ``fit``.
        """
        if self.input_norm == "none":
            return
        x = torch.as_tensor(x, dtype=torch.float64)
        pc, chans = self.phase_channels, {self.in_chans}
        if x.ndim != 4 or x.shape[1] not in chans or x.shape[0] < 1:
            raise ValueError(f"fmanet.fit_input_stats: expected (N>=1, {self.in_chans}, H, W), got {tuple(x.shape)}")
        x = torch.cat([x[:, p * pc:(p + 1) * pc] for p in self.phases], dim=1)  # the channels the streams read
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        if self.input_norm == "scale":
            shift, spread = torch.zeros(flat.shape[0], dtype=torch.float64), flat.pow(2).mean(1).sqrt()
        else:
            shift, spread = flat.mean(1), flat.std(1, correction=0)
        spread = torch.where(spread > 1e-8, spread, torch.ones_like(spread))
        self.input_shift.copy_(shift.float())
        self.input_scale.copy_((1.0 / spread).float())
        self.input_stats_fitted = True

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        pc = self.phase_channels
        feats, gates = [], []
        for i, p in enumerate(self.phases):
            stream = self.stream_modules[0 if self.shared_weights else i]
            xp = x[:, p * pc : (p + 1) * pc]
            if self.input_norm != "none":
                s = slice(i * pc, (i + 1) * pc)
                xp = (xp - self.input_shift[None, s, None, None]) * self.input_scale[None, s, None, None]
            f, g = stream(xp)
            feats.append(f)
            gates.append(g)

        fusion_weights = None
        if self.fusion == "attention":
            fused, fusion_weights = self.fuse(feats)
        elif self.fusion == "sum":
            fused = feats[0] + feats[1]
        elif self.fusion == "concat":
            fused = self.fuse(torch.cat(feats, dim=1))
        elif self.fusion == "cross_attention":
            fused, fusion_weights = self.fuse(feats)
        else:
            fused = feats[0]

        attention = None
        if self.spatial_attention is not None:
            fused, a = self.spatial_attention(fused)
            attention = a[:, 0]

        logits = self.classifier(self.dropout(self.pool(fused).flatten(1)))
        if not return_aux:
            return logits
        aux = {
            "fusion_weights": fusion_weights,
            "attention": attention,
            "gates": None if gates[0] is None else torch.stack(gates, dim=1),
        }
        return logits, aux


def skip_input(representation, streams: str = "both", phase_channels: int = 3, magnitude_index: int = 2,
               modulation: str = "spatial", **_) -> tuple[bool, str]:
    """FMANet reads one block of ``phase_channels`` channels per phase (benchopt-style ``skip``)."""
    rep, groups = representation, representation.phase_groups
    chans = ", ".join(rep.channels)
    if groups is None:
        return True, (f"fmanet reads one block of {phase_channels} channels per phase; {rep.name} ({chans}) "
                      "has channels that mix the phases")
    if any(len(g) != phase_channels for g in groups):
        return True, f"fmanet reads {phase_channels} channels per phase; {rep.name} has {len(groups[0])} ({chans})"
    if streams == "auto":  # the phases the input carries: both as blocks, or one
        streams = "both" if rep.phases == (1, 2) else {(1,): "onset_apex", (2,): "apex_offset"}.get(rep.phases, "both")
    want = {"both": (1, 2), "onset_apex": (1,), "apex_offset": (2,)}.get(streams)
    if want is None:
        return False, ""  # a bad value is the constructor's error, reported at validation
    if streams == "both" and rep.phases != (1, 2):
        return True, (f"fmanet with streams=both needs both phases as separate blocks; {rep.name} ({chans}) "
                      f"carries phase {', '.join(map(str, rep.phases))} only")
    if not set(want) <= set(rep.phases):
        return True, f"fmanet with streams={streams} reads phase {want[0]}; {rep.name} ({chans}) does not carry it"
    if modulation == "spatial":
        vec = [g[magnitude_index] for g in groups if g[magnitude_index][:1] in ("u", "v")]
        if vec:
            return True, (f"fmanet's spatial modulation gates on channel {magnitude_index} of each phase, a "
                          f"magnitude; {rep.name} has {vec[0]} there")
    return False, ""


@register_model(skip=skip_input)
def fmanet(in_chans: int, num_classes: int, channels: Sequence[str] | None = None, **params) -> FMANet:
    return FMANet(in_chans=in_chans, num_classes=num_classes, channels=channels, **params)
