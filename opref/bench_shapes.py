"""The bench's shapes: 15 ConvTranspose layers with their sources (issue 27), as data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# A shape is arithmetic-bound when each output element takes at least this many
# multiply-adds: then the products, not the passes over memory, set the time.
ARITHMETIC_MACS_PER_OUTPUT = 128


@dataclass(frozen=True)
class Shape:
    """One benchmark shape: ONNX ConvTranspose operands and attributes, and where it is from.

    ``check`` is the most opref / f64 GEMM that --check accepts: about 1.5 times the largest of
    three ``--native-blas --threads 1`` runs on the shared 2-core machine the table was written
    on (Haswell kernel, load 3.5-5.9), so that noise alone does not trip it.
    """

    label: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    attrs: Mapping[str, object]
    source: str
    check: float

    @property
    def group(self) -> int:
        return int(self.attrs.get("group", 1))

    @property
    def output(self) -> tuple[int, ...]:
        import opref

        return opref.geometry(self.x, self.w, **self.attrs).output_shape

    @property
    def macs(self) -> int:
        """Multiply-adds of the scatter definition: every tap of every input position."""
        return self.x[0] * self.x[1] * self.w[1] * math.prod(self.w[2:]) * math.prod(self.x[2:])

    @property
    def bound(self) -> str:
        macs_per_output = self.macs / math.prod(self.output)
        return "arithmetic" if macs_per_output >= ARITHMETIC_MACS_PER_OUTPUT else "memory"


def _attrs(stride: int, output_padding: int, pad: int = 0, rank: int = 2, **more) -> dict:
    """The same stride, output_padding and pad on every axis."""
    attrs: dict = {"strides": [stride] * rank, "pads": [pad] * 2 * rank}
    if output_padding:
        attrs["output_padding"] = [output_padding] * rank
    return attrs | more


SHAPES = (
    Shape("1 2-D N1 C64->32 56x56 k4 s2 p1", (1, 64, 56, 56), (64, 32, 4, 4), _attrs(2, 0, 1),
          "bench shape 1 (synthetic)", 1.6),
    Shape("2 2-D N8 C16->16 32x32 k3 s2 p1 op1", (8, 16, 32, 32), (16, 16, 3, 3), _attrs(2, 1, 1),
          "bench shape 2 (synthetic)", 6.4),
    Shape("3 3-D N1 C8->8 16^3 k3 s2 p1 op1", (1, 8, 16, 16, 16), (8, 8, 3, 3, 3), _attrs(2, 1, 1, 3),
          "bench shape 3 (synthetic)", 6.2),
    Shape("4 1-D N4 C32->32 L1024 k8 s4 p2", (4, 32, 1024), (32, 32, 8), _attrs(4, 0, 2, 1),
          "bench shape 4 (synthetic)", 3.5),
    # Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation"
    # (CVPR 2015), voc-fcn8s on a 500x500 image: score_fr 16x16 -> upscore2 34x34 ->
    # upscore_pool4 70x70 -> upscore8 568x568 (cropped to 500 afterwards), 21 classes, no
    # bias, bilinear weights; Caffe's "Deconvolution" with C = M = 21, group 1.
    Shape("FCN-8s upscore8 C21 70x70 k16 s8", (1, 21, 70, 70), (21, 21, 16, 16), _attrs(8, 0),
          "FCN-8s (Long et al. 2015), upscore8", 1.6),
    Shape("FCN-8s upscore_pool4 C21 34x34 k4 s2", (1, 21, 34, 34), (21, 21, 4, 4), _attrs(2, 0),
          "FCN-8s (Long et al. 2015), upscore_pool4", 2.3),
    # The same bilinear upsampling as a per-class (depthwise) filter, group = 21.
    Shape("FCN-8s upscore8 depthwise g21 k16 s8", (1, 21, 70, 70), (21, 1, 16, 16), _attrs(8, 0, group=21),
          "FCN-8s upscore8, depthwise form", 3.0),
    Shape("FCN-8s upscore_pool4 depthwise g21 k4 s2", (1, 21, 34, 34), (21, 1, 4, 4), _attrs(2, 0, group=21),
          "FCN-8s upscore_pool4, depthwise form", 9.0),
    # Caffe's BilinearFiller documents this layer for upsampling by a factor f: kernel
    # 2f - f%2, stride f, pad ceil((f-1)/2), group = num_output = C; f = 2 on a
    # 256-channel 64x64 feature map.
    Shape("bilinear x2 depthwise C256 64x64 k4 s2 p1", (1, 256, 64, 64), (256, 1, 4, 4),
          _attrs(2, 0, 1, group=256), "Caffe BilinearFiller upsampling layer, f=2", 4.2),
    # Ronneberger, Fischer, Brox, "U-Net" (MICCAI 2015), Fig. 1: the first up-convolution,
    # 2x2, halving the channels, 28x28x1024 -> 56x56x512.
    Shape("U-Net up-conv C1024->512 28x28 k2 s2", (1, 1024, 28, 28), (1024, 512, 2, 2), _attrs(2, 0),
          "U-Net (Ronneberger et al. 2015), first up-conv", 2.3),
    # Radford, Metz, Chintala, "DCGAN" (ICLR 2016), Fig. 1: z (100) projected to 4x4x1024,
    # then 5x5... in the paper; the common ONNX/PyTorch export uses k4: 1x1 -> 4x4 (k4 s1
    # p0), then 4x4x1024 -> 8x8x512 (k4 s2 p1). Mini-batches of 64 and 8.
    Shape("DCGAN G1 N64 100->1024 1x1 k4 s1", (64, 100, 1, 1), (100, 1024, 4, 4), _attrs(1, 0),
          "DCGAN generator (Radford et al. 2016), projection", 12.3),
    Shape("DCGAN G2 N8 1024->512 4x4 k4 s2 p1", (8, 1024, 4, 4), (1024, 512, 4, 4), _attrs(2, 0, 1),
          "DCGAN generator (Radford et al. 2016), second layer", 8.2),
    # Isensee et al., "nnU-Net" (Nature Methods 2021), 3d_fullres with a 128^3 patch:
    # feature maps 32, 64, 128, ... channels; the decoder's transposed convolution
    # from the 32^3 stage (128 channels) to the 64^3 stage (64 channels), 2x2x2 stride 2.
    Shape("3-D U-Net up-conv C128->64 32^3 k2 s2", (1, 128, 32, 32, 32), (128, 64, 2, 2, 2),
          _attrs(2, 0, 0, 3),
          "3-D U-Net decoder (nnU-Net 3d_fullres, Isensee et al. 2021)", 2.6),
    # Kong, Kim, Bae, "HiFi-GAN" (NeurIPS 2020), V1 generator: upsample rates 8, 8, 2, 2,
    # kernels 16, 16, 4, 4, padding (k - u)/2, channels 512 halving; one second of
    # 22.05 kHz audio is 86 mel frames (hop 256). MelGAN's upsamplers have the same sizes.
    Shape("HiFi-GAN up1 C512->256 L86 k16 s8 p4", (1, 512, 86), (512, 256, 16), _attrs(8, 0, 4, 1),
          "HiFi-GAN V1 (Kong et al. 2020), first upsampler", 5.0),
    Shape("HiFi-GAN up3 C128->64 L5504 k4 s2 p1", (1, 128, 5504), (128, 64, 4), _attrs(2, 0, 1, 1),
          "HiFi-GAN V1 (Kong et al. 2020), third upsampler", 1.9),
)


