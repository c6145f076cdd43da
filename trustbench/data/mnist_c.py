"""MNIST-C's fifteen corruptions, each at the one severity its authors chose, on a batch of raw grayscale
28×28 images (float N×1×28×28 in [0, 1]; the result has the same shape and dtype, clipped to [0, 1]).

Mu & Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", ICML 2019 Workshop on Uncertainty and
Robustness in Deep Learning. The parameters are those of the reference ``corruptions.py``
(github.com/google-research/mnist-c), where each corruption's default severity is the one the dataset
uses; image coordinates are (column, row) with rows counted downwards, pixel centres at 0..27, the centre
at (13.5, 13.5).

- ``shot_noise``: Poisson(3·x) / 3 (severity 5), by :mod:`trustbench.data.shifts`' shot noise.
- ``impulse_noise``: each pixel is replaced with probability 0.17, by 1 (salt) or 0 (pepper) with equal
  odds (severity 4; skimage's ``random_noise(mode='s&p')``).
- ``glass_blur``: blur σ = 0.7, quantised down to 1/255 steps (the reference's ``np.uint8``), then two
  passes over rows and columns 27 down to 2 in which each pixel, with probability 1/2, swaps with the
  pixel at offset (d_row, d_col), each uniform in {-1, 0} (numpy's ``randint(-1, 1)`` excludes 1), then
  the blur again (severity 1). The reference blurs with skimage's ``gaussian(multichannel=True)`` on a
  2-D image, which reads its columns as channels, so both blurs run down the columns only; so do these.
- ``motion_blur``: ImageMagick's ``MotionBlurImage`` at radius 10, sigma 3 (severity 1): a one-sided
  kernel of 21 taps, weights exp(-i²/18) normalised, tap i at the whole-pixel offset (⌈i·cos a - ½⌉,
  ⌈i·sin a - ½⌉), a uniform in (-45°, 45°) per image, edge pixels repeated outside the image, the result
  rounded to 1/255 (the 8-bit PNG the reference reads back).
- ``shear``: skimage's affine shear of ±0.4 rad (sign random per image) about the centre, output (c, r)
  sampling the input at (c - sin(0.4)·r, cos(0.4)·r) relative to the centre (severity 2).
- ``scale``: the digit shrunk to 0.7 of its size about the centre (severity 3).
- ``rotate``: turned by ±0.4 rad (±22.9°, sign random per image) about the centre (severity 2), by
  :func:`trustbench.data.shifts.rotate`.
- ``brightness``: min(x + 0.5, 1) (severity 5; the reference's gray → HSV, V + 0.5, → gray round trip is
  exactly that on one channel), by :mod:`trustbench.data.shifts`' brightness.
- ``translate``: moved by 3 pixels along each axis, each direction's sign random (severity 3).
- ``stripe``: columns 0..6 and 21..27 inverted (1 - x).
- ``fog``: (x + 3·p)·m / (m + 3), m the image's maximum and p the top-left 28×28 of a 256×256
  diamond-square plasma fractal with wibble decay 1.4, scaled to [0, 1] over the whole map (severity 5).
- ``spatter``: liquid ~ N(0.65, 0.3²) per pixel, blurred σ = 1, zero below 0.65; mask m = the indicator
  liquid > 0.65 blurred σ = 1.5, zero below 0.8; x·(1 - m) + (63/255)·m, grey mud (severity 4).
- ``dotted_line``: a line from (0, r0) to (27, r1), r0 and r1 uniform in 0..26, of intensity
  log(1 - d/2.3) + 1 at vertical distance d from it, clipped to [0, 1], drawn on column pairs 2-3, 6-7, ...,
  26 (column 27 is outside the reference's line), added to the image.
- ``zigzag``: the reference's zigzag of amplitude 2 and half-period 2 from column 2 to 25 around the line
  from (2, r0) to (25, r0 + k), r0 uniform in 0..26 and k in -5..4, its segments drawn as above and added
  (its last segment ends at the reference's (d, r/(2·(d - 4⌊d/4⌋))), a quirk kept as it is).
- ``canny_edges``: skimage's Canny edge map, σ = 1, thresholds 0.1 and 0.2 (:mod:`trustbench.data.canny`).

Departures from the reference: random draws come from a torch generator seeded by (seed, corruption name)
(as :mod:`trustbench.data.shifts` does) instead of numpy's global state, so the images differ but the
distributions are the same; ImageMagick (motion blur) and scikit-image (Canny, blurs, affine warps) are
not dependencies, so their arithmetic is written here in torch (float64 throughout, as the reference's
numpy; ImageMagick's own 16-bit quantum is not modelled); affine warps use ``F.grid_sample`` (bilinear,
zero outside, pixel centres aligned), which is skimage's ``warp(order=1, mode='constant')``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from trustbench.data import shifts
from trustbench.data.canny import canny_edges, gaussian_kernel
from trustbench.data.loaders import named_generator
from trustbench.data.ood_sets import gaussian_blur

SIDE = 28
CENTRE = (SIDE - 1) / 2
IMAGE_SHAPE = (1, SIDE, SIDE)

SHOT_PHOTONS = 3.0
IMPULSE_AMOUNT = 0.17
GLASS_SIGMA, GLASS_MAX_DELTA, GLASS_ITERATIONS = 0.7, 1, 2
MOTION_TAPS, MOTION_SIGMA, MOTION_MAX_DEGREES = 21, 3.0, 45.0  # ImageMagick: 2·⌈radius 10⌉ + 1 taps
SHEAR = 0.4
SCALE = 0.7
ROTATE_RADIANS = 0.4
BRIGHTNESS = 0.5
TRANSLATE = 3.0
STRIPE_COLUMNS = 7
FOG_STRENGTH, FOG_DECAY, PLASMA_SIZE = 3.0, 1.4, 256
SPATTER_MEAN, SPATTER_STD, SPATTER_SIGMA, SPATTER_LEVEL = 0.65, 0.3, 1.0, 0.65
SPATTER_MASK_SIGMA, SPATTER_MASK_LEVEL, MUD = 1.5, 0.8, 63 / 255
LINE_REACH = 2.3
ZIGZAG_AMPLITUDE, ZIGZAG_HALF_PERIOD, ZIGZAG_START, ZIGZAG_END, ZIGZAG_MAX_TILT = 2.0, 2.0, 2, 25, 5


def random_signs(count: int, generator: torch.Generator) -> Tensor:
    """`count` float64 signs, -1 or +1 with equal odds (the reference's ``np.random.choice([-1, 1])``)."""
    return torch.randint(0, 2, (count,), generator=generator).to(torch.float64) * 2 - 1


def warp(images: Tensor, matrices: Tensor) -> Tensor:
    """`images` resampled bilinearly so that output pixel (c, r) takes the input at ``matrices @ (c, r, 1)``
    (N×2×3, pixel coordinates), 0 where that falls outside: skimage's ``warp(image, inverse_map)``."""
    height, width = images.shape[-2:]
    to_pixels = torch.tensor(
        [[width / 2, 0.0, (width - 1) / 2], [0.0, height / 2, (height - 1) / 2], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(len(matrices), 1, 3)
    square = torch.cat([matrices.to(torch.float64), bottom], dim=1)
    theta = (torch.linalg.inv(to_pixels) @ square @ to_pixels)[:, :2].to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def about_centre(linear: Tensor) -> Tensor:
    """The N×2×3 affine maps with linear parts `linear` (N×2×2) that keep the image centre fixed."""
    centre = torch.full((2, 1), CENTRE, dtype=torch.float64)
    return torch.cat([linear, centre - linear @ centre], dim=2)


def line_layers(col0: Tensor, row0: Tensor, col1: Tensor, row1: Tensor) -> Tensor:
    """The reference's ``line_from_points`` for K segments at once (float64 K×28×28): log(1 - d/2.3) + 1
    clipped to [0, 1] at vertical distance d from the line through (col0, row0) and (col1, row1), zero
    left of column ⌊col0⌋ and from column ⌈col1⌉ on, all zero for a vertical segment."""
    columns = torch.arange(SIDE, dtype=torch.float64)[None, None, :]
    rows = torch.arange(SIDE, dtype=torch.float64)[None, :, None]
    col0, row0, col1, row1 = (value.to(torch.float64)[:, None, None] for value in (col0, row0, col1, row1))
    slope = (row1 - row0) / (col1 - col0)
    distance = (rows - (slope * (columns - col0) + row0)).abs().clamp(max=LINE_REACH - 1e-10)
    layer = (torch.log(1 - distance / LINE_REACH) + 1).clamp(0.0, 1.0)
    drawn = (columns >= col0.floor()) & (columns < col1.ceil()) & (col1 != col0)
    return torch.where(drawn, layer, torch.zeros_like(layer))


def plasma_fractals(count: int, generator: torch.Generator) -> Tensor:
    """`count` float64 PLASMA_SIZE² diamond-square height maps in [0, 1] (the reference's
    ``plasma_fractal(mapsize=256, wibbledecay=1.4)``): each new point is the mean of its four parents plus
    wibble·U(-wibble, wibble), the wibble starting at 100 and divided by FOG_DECAY at each halving."""
    maps = torch.zeros(count, PLASMA_SIZE, PLASMA_SIZE, dtype=torch.float64)
    step, wibble = PLASMA_SIZE, 100.0

    def wibbled(sums: Tensor) -> Tensor:
        noise = torch.rand(sums.shape, generator=generator, dtype=torch.float64) * 2 * wibble - wibble
        return sums / 4 + wibble * noise

    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        squares = corners + corners.roll(-1, dims=1)
        maps[:, half::step, half::step] = wibbled(squares + squares.roll(-1, dims=2))
        centres = maps[:, half::step, half::step]
        corners = maps[:, ::step, ::step]
        rows_sum = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        maps[:, ::step, half::step] = wibbled(rows_sum)
        columns_sum = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        maps[:, half::step, ::step] = wibbled(columns_sum)
        step, wibble = half, wibble / FOG_DECAY
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / maps.amax(dim=(1, 2), keepdim=True)


def zigzag_segments(row0: int, row1: int) -> list[tuple[float, float, float, float]]:
    """The reference zigzag's segments (col0, row0, col1, row1) around the line from (ZIGZAG_START, `row0`)
    to (ZIGZAG_END, `row1`): peaks of ±amplitude every 2·half-period along the tilted line."""
    tilt = math.atan((row1 - row0) / (ZIGZAG_END - ZIGZAG_START))
    length = (ZIGZAG_END - ZIGZAG_START) / math.cos(tilt)
    period = 2 * ZIGZAG_HALF_PERIOD
    points = [(0.0, 0.0)]
    for index in range(int((length - ZIGZAG_HALF_PERIOD) // period) + 1):
        points.append(((2 * index + 1) * ZIGZAG_HALF_PERIOD, (-1) ** index * ZIGZAG_AMPLITUDE))
    whole_periods = period * (length // period)
    if length != whole_periods:
        points.append((length, points[-1][1] / (2 * (length - whole_periods))))
    cos, sin = math.cos(tilt), math.sin(tilt)
    placed = [(ZIGZAG_START + c * cos - r * sin, row0 + c * sin + r * cos) for c, r in points]
    return [(*start, *end) for start, end in zip(placed, placed[1:], strict=False)]


def _vertical_blur(images: Tensor, sigma: float) -> Tensor:
    kernel = gaussian_kernel(sigma).to(images.dtype)
    radius = len(kernel) // 2
    padded = F.pad(images, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


def _shot_noise(images: Tensor, generator: torch.Generator) -> Tensor:
    return shifts.CORRUPTIONS["shot_noise"].apply(images, SHOT_PHOTONS, generator)


def _impulse_noise(images: Tensor, generator: torch.Generator) -> Tensor:
    flipped = torch.rand(images.shape, generator=generator) < IMPULSE_AMOUNT
    salted = torch.rand(images.shape, generator=generator) < 0.5
    noisy = torch.where(flipped & salted, torch.ones_like(images), images)
    return torch.where(flipped & ~salted, torch.zeros_like(images), noisy)


def _glass_blur(images: Tensor, generator: torch.Generator) -> Tensor:
    quantised = (_vertical_blur(images, GLASS_SIGMA) * 255).floor() / 255
    pixels = quantised.reshape(len(images), SIDE * SIDE)
    positions = torch.arange(SIDE - GLASS_MAX_DELTA, GLASS_MAX_DELTA, -1)
    rows = positions.repeat_interleave(len(positions)).repeat(GLASS_ITERATIONS)
    columns = positions.repeat(len(positions) * GLASS_ITERATIONS)
    here = rows * SIDE + columns  # flat index of each step's pixel, in the reference's order
    shape = (len(here), len(images))
    swaps = torch.rand(shape, generator=generator) < 0.5
    row_offsets, column_offsets = (
        torch.randint(-GLASS_MAX_DELTA, GLASS_MAX_DELTA, shape, generator=generator) for _ in range(2)
    )
    # a pixel that does not swap "swaps" with itself
    there = here[:, None] + torch.where(swaps, row_offsets * SIDE + column_offsets, 0)
    image = torch.arange(len(images))
    for step in range(len(here)):
        taken = pixels[:, here[step]].clone()
        pixels[:, here[step]] = pixels[image, there[step]]
        pixels[image, there[step]] = taken
    return _vertical_blur(pixels.reshape(images.shape), GLASS_SIGMA)


def _motion_blur(images: Tensor, generator: torch.Generator) -> Tensor:
    angles = torch.rand(len(images), generator=generator, dtype=torch.float64) * 2 - 1
    radians = torch.deg2rad(angles * MOTION_MAX_DEGREES)[:, None]
    taps = torch.arange(MOTION_TAPS, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * MOTION_SIGMA**2))
    weights = (weights / weights.sum()).to(images.dtype)
    column_offsets = torch.ceil(taps * radians.cos() - 0.5).long()  # N × taps
    row_offsets = torch.ceil(taps * radians.sin() - 0.5).long()
    pixels = torch.arange(SIDE)
    rows = (pixels[None, None, :, None] + row_offsets[:, :, None, None]).clamp(0, SIDE - 1)
    columns = (pixels[None, None, None, :] + column_offsets[:, :, None, None]).clamp(0, SIDE - 1)
    image = torch.arange(len(images))[:, None, None, None]
    taken = images[:, 0][image, rows, columns]  # N × taps × 28 × 28
    blurred = torch.einsum("ntrc,t->nrc", taken, weights)
    return (blurred * 255).round()[:, None] / 255


def _shear(images: Tensor, generator: torch.Generator) -> Tensor:
    angles = SHEAR * random_signs(len(images), generator)
    linear = torch.zeros(len(images), 2, 2, dtype=torch.float64)
    linear[:, 0, 0] = 1.0
    linear[:, 0, 1] = -angles.sin()
    linear[:, 1, 1] = angles.cos()
    return warp(images, about_centre(linear))


def _scale(images: Tensor, generator: torch.Generator) -> Tensor:
    linear = torch.eye(2, dtype=torch.float64).expand(len(images), 2, 2) / SCALE
    return warp(images, about_centre(linear))


def _rotate(images: Tensor, generator: torch.Generator) -> Tensor:
    signs = random_signs(len(images), generator)
    turned = images.clone()
    for sign in (-1.0, 1.0):
        if (chosen := signs == sign).any():
            turned[chosen] = shifts.rotate(images[chosen], sign * math.degrees(ROTATE_RADIANS))
    return turned


def _brightness(images: Tensor, generator: torch.Generator) -> Tensor:
    return shifts.CORRUPTIONS["brightness"].apply(images, BRIGHTNESS, generator)


def _translate(images: Tensor, generator: torch.Generator) -> Tensor:
    moves = TRANSLATE * torch.stack([random_signs(len(images), generator) for _ in range(2)], dim=1)
    identity = torch.eye(2, dtype=torch.float64).expand(len(images), 2, 2)
    return warp(images, torch.cat([identity, moves[:, :, None]], dim=2))


def _stripe(images: Tensor, generator: torch.Generator) -> Tensor:
    striped = images.clone()
    for band in (slice(None, STRIPE_COLUMNS), slice(SIDE - STRIPE_COLUMNS, None)):
        striped[..., band] = 1 - images[..., band]
    return striped


def _fog(images: Tensor, generator: torch.Generator) -> Tensor:
    plasma = plasma_fractals(len(images), generator)[:, None, :SIDE, :SIDE].to(images.dtype)
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images + FOG_STRENGTH * plasma) * peak / (peak + FOG_STRENGTH)


def _spatter(images: Tensor, generator: torch.Generator) -> Tensor:
    liquid = SPATTER_MEAN + SPATTER_STD * torch.randn(images.shape, generator=generator, dtype=images.dtype)
    liquid = gaussian_blur(liquid, SPATTER_SIGMA)
    mask = gaussian_blur((liquid > SPATTER_LEVEL).to(images.dtype), SPATTER_MASK_SIGMA)
    mask = mask.where(mask >= SPATTER_MASK_LEVEL, torch.zeros_like(mask))
    return images * (1 - mask) + MUD * mask


def _dotted_line(images: Tensor, generator: torch.Generator) -> Tensor:
    ends = torch.randint(0, SIDE - 1, (2, len(images)), generator=generator)
    edges = torch.zeros(len(images)), torch.full((len(images),), SIDE - 1.0)
    line = line_layers(edges[0], ends[0], edges[1], ends[1])
    dashes = (torch.arange(SIDE) // 2) % 2 == 1
    return images + (line * dashes).to(images.dtype)[:, None]


def _zigzag(images: Tensor, generator: torch.Generator) -> Tensor:
    starts = torch.randint(0, SIDE - 1, (len(images),), generator=generator)
    tilts = torch.randint(-ZIGZAG_MAX_TILT, ZIGZAG_MAX_TILT, (len(images),), generator=generator)
    segments, owners = [], []
    for index, (start, tilt) in enumerate(zip(starts.tolist(), tilts.tolist(), strict=True)):
        pieces = zigzag_segments(start, start + tilt)
        segments += pieces
        owners += [index] * len(pieces)
    layers = line_layers(*torch.tensor(segments, dtype=torch.float64).T)
    drawn = torch.zeros(len(images), SIDE, SIDE, dtype=torch.float64)
    drawn.index_add_(0, torch.tensor(owners), layers)
    return images + drawn.to(images.dtype)[:, None]


def _canny_edges(images: Tensor, generator: torch.Generator) -> Tensor:
    return canny_edges(images)


MNIST_C: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "shear": _shear,
    "scale": _scale,
    "rotate": _rotate,
    "brightness": _brightness,
    "translate": _translate,
    "stripe": _stripe,
    "fog": _fog,
    "spatter": _spatter,
    "dotted_line": _dotted_line,
    "zigzag": _zigzag,
    "canny_edges": _canny_edges,
}
"""MNIST-C's corruptions in the reference's order: name -> function(float64 images, generator)."""


def corrupt(images: Tensor, name: str, seed: int = 0) -> Tensor:
    """`images` (raw, N×1×28×28 floats in [0, 1]) under MNIST-C corruption `name`, clipped to [0, 1].

    The same images, name and seed give the same tensor in every process; `images` is left unchanged.
    """
    if name not in MNIST_C:
        raise ValueError(f"unknown MNIST-C corruption {name!r}; valid names: {', '.join(MNIST_C)}")
    low, high = (float(images.amin()), float(images.amax())) if images.numel() else (0.0, 1.0)
    shaped = images.ndim == 4 and tuple(images.shape[1:]) == IMAGE_SHAPE and images.is_floating_point()
    if not shaped or low < 0 or high > 1:
        raise ValueError(
            "MNIST-C corruptions take raw float images of shape (N, 1, 28, 28) in [0, 1] (the dataset's "
            f"images, not a normalised datamodule split); got {images.dtype} of shape {tuple(images.shape)} "
            f"with values from {low:.3g} to {high:.3g}"
        )
    if not len(images):
        return images.clone()
    generator = named_generator(seed, f"mnist_c/{name}")
    return MNIST_C[name](images.to(torch.float64), generator).clamp(0.0, 1.0).to(images.dtype)
