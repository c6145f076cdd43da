"""MNIST-C's corruptions on real MNIST digits: each one's defining property, checked against a hand-computed
or independently computed value, and what every corruption keeps (shape, range, seeding)."""

from __future__ import annotations

import math

import pytest
import torch
from real_data import real

from trustbench.data.canny import canny_edges
from trustbench.data.mnist_c import MNIST_C, corrupt, line_layers, zigzag_segments

CENTRE = 13.5
# Corruptions that draw nothing at random: the same output for every seed.
FIXED = {"scale", "brightness", "stripe", "canny_edges"}


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return real("mnist").x_test[:60]


def ramp(count: int) -> torch.Tensor:
    """Images of a linear function of (column, row): bilinear sampling reproduces it exactly inside."""
    columns = torch.arange(28, dtype=torch.float64)
    value = 0.1 + 0.02 * columns[None, :] + 0.01 * columns[:, None]
    return value.expand(count, 1, 28, 28).clone()


def ramp_at(columns: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return 0.1 + 0.02 * columns + 0.01 * rows


def affine_expected(linear: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ramp warped by output (c, r) <- input centre + linear·((c, r) - centre); the mask of output pixels
    whose source lies inside the image's pixel centres (bilinear sampling is exact there), and the mask
    of those whose source lies over a pixel outside (zero there)."""
    pixels = torch.arange(28, dtype=torch.float64)
    rows, columns = torch.meshgrid(pixels, pixels, indexing="ij")
    relative = torch.stack([columns - CENTRE, rows - CENTRE])
    source = torch.einsum("ij,jrc->irc", linear.to(torch.float64), relative) + CENTRE
    inside = ((source >= 0) & (source <= 27)).all(dim=0)
    outside = ((source <= -1) | (source >= 28)).any(dim=0)
    return ramp_at(*source), inside, outside


@pytest.mark.parametrize("name", list(MNIST_C))
def test_every_corruption_keeps_shape_dtype_and_unit_range_and_leaves_its_input_alone(name, digits):
    images = digits[:20]
    original = images.clone()
    corrupted = corrupt(images, name, seed=0)
    assert corrupted.shape == images.shape and corrupted.dtype == images.dtype
    assert corrupted.min() >= 0 and corrupted.max() <= 1
    assert torch.equal(images, original)
    assert not torch.equal(corrupted, images)


@pytest.mark.parametrize("name", list(MNIST_C))
def test_a_seed_gives_the_same_images_and_another_seed_other_random_draws(name, digits):
    images = digits[:20]
    torch.testing.assert_close(corrupt(images, name, seed=3), corrupt(images, name, seed=3), rtol=0, atol=0)
    assert torch.equal(corrupt(images, name, seed=3), corrupt(images, name, seed=4)) == (name in FIXED)


def test_names_and_shapes_outside_mnist_c_are_refused_in_one_line(digits):
    unknown = r"unknown MNIST-C corruption 'fogg'; valid names: shot_noise, .*canny_edges$"
    with pytest.raises(ValueError, match=unknown):
        corrupt(digits[:2], "fogg")
    wrong = r"raw float images of shape \(N, 1, 28, 28\) in \[0, 1\].*; got torch.float32 of shape "
    with pytest.raises(ValueError, match=wrong + r"\(2, 3, 28, 28\) with values from 0 to 1$"):
        corrupt(digits[:2].expand(2, 3, 28, 28), "fog")
    with pytest.raises(ValueError, match=wrong + r"\(2, 1, 28, 28\) with values from -1 to 1$"):
        corrupt(digits[:2] * 2 - 1, "fog")


def the_sign_that_maps_the_ramp(image: torch.Tensor, linear_for_angle, angle: float) -> int:
    """Which of -`angle` and +`angle` (as -1 or +1) warps the ramp exactly into `image` (one of them must)."""
    matches = []
    for sign in (-1, 1):
        expected, inside, outside = affine_expected(linear_for_angle(sign * angle))
        exact = torch.allclose(image[0][inside], expected[inside], atol=1e-7)
        matches.append(exact and image[0][outside].abs().max() == 0)
    assert sum(matches) == 1
    return -1 if matches[0] else 1


def test_shear_is_skimages_shear_of_plus_or_minus_point_four_about_the_centre():
    def shear(angle: float) -> torch.Tensor:
        return torch.tensor([[1, -math.sin(angle)], [0, math.cos(angle)]])

    sheared = corrupt(ramp(16), "shear", seed=0)
    signs = {the_sign_that_maps_the_ramp(image, shear, 0.4) for image in sheared}
    assert signs == {-1, 1}


def test_scale_shrinks_about_the_centre_to_seven_tenths():
    expected, inside, outside = affine_expected(torch.eye(2) / 0.7)
    scaled = corrupt(ramp(2), "scale")
    torch.testing.assert_close(scaled[:, 0][:, inside], expected[inside].expand(2, -1), atol=1e-7, rtol=0)
    assert outside.sum() > 100 and scaled[:, 0][:, outside].abs().max() == 0


def test_rotate_turns_by_plus_or_minus_point_four_radians_about_the_centre():
    def rotation(angle: float) -> torch.Tensor:
        return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    turned = corrupt(ramp(16), "rotate", seed=0)
    signs = {the_sign_that_maps_the_ramp(image, rotation, 0.4) for image in turned}
    assert signs == {-1, 1}


def test_translate_moves_real_digits_by_three_pixels_along_each_axis_with_zeros_coming_in(digits):
    moved = corrupt(digits, "translate", seed=0)
    moves = set()
    for image, digit in zip(moved, digits, strict=True):
        # output (c, r) takes the input at (c + dc, r + dr)
        padded = torch.nn.functional.pad(digit, (3, 3, 3, 3))
        matches = [
            (dc, dr)
            for dc in (-3, 3)
            for dr in (-3, 3)
            if torch.allclose(image, padded[:, 3 + dr : 31 + dr, 3 + dc : 31 + dc], atol=1e-6)
        ]
        assert len(matches) == 1
        moves.add(matches[0])
    assert len(moves) == 4


def test_impulse_noise_salts_and_peppers_about_seventeen_percent_of_pixels_half_each(digits):
    noisy = corrupt(digits, "impulse_noise", seed=0)
    changed = noisy != digits
    assert ((noisy[changed] == 0) | (noisy[changed] == 1)).all()
    salt = (noisy == 1)[digits < 1].float().mean()
    pepper = (noisy == 0)[digits > 0].float().mean()
    # 60 digits: about 40k pixels below 1 and 9k above 0; four binomial standard deviations
    assert abs(float(salt) - 0.085) < 4 * math.sqrt(0.085 * 0.915 / int((digits < 1).sum()))
    assert abs(float(pepper) - 0.085) < 4 * math.sqrt(0.085 * 0.915 / int((digits > 0).sum()))


def test_shot_noise_keeps_the_mean_and_lands_on_thirds(digits):
    noisy = corrupt(digits, "shot_noise", seed=0)
    thirds = noisy * 3
    assert torch.allclose(thirds, thirds.round(), atol=1e-5)  # Poisson counts of 3 photons, clipped at 1
    rate = 3 * digits.to(torch.float64)
    expected_mean = sum(  # E[min(Poisson(3x)/3, 1)] per pixel, over the Poisson's first 20 terms
        torch.exp(-rate) * rate**k / math.factorial(k) * min(k / 3, 1.0) for k in range(20)
    ).mean()
    assert abs(float(noisy.mean()) - float(expected_mean)) < 0.01


def test_brightness_adds_a_half_and_clips(digits):
    torch.testing.assert_close(corrupt(digits, "brightness"), (digits + 0.5).clamp(max=1.0))


def test_stripe_inverts_the_seven_outer_columns_on_each_side(digits):
    striped = corrupt(digits, "stripe")
    torch.testing.assert_close(striped[..., :7], 1 - digits[..., :7])
    torch.testing.assert_close(striped[..., 21:], 1 - digits[..., 21:])
    torch.testing.assert_close(striped[..., 7:21], digits[..., 7:21])


def test_fog_is_the_image_plus_three_times_a_unit_plasma_scaled_by_max_over_max_plus_three(digits):
    digits = digits[:20]
    fogged = corrupt(digits, "fog", seed=0).to(torch.float64)
    peak = digits.amax(dim=(1, 2, 3), keepdim=True).to(torch.float64)
    plasma = (fogged * (peak + 3) / peak - digits) / 3
    assert plasma.min() >= -1e-6 and plasma.max() <= 1 + 1e-6
    spread = plasma.amax(dim=(1, 2, 3)) - plasma.amin(dim=(1, 2, 3))
    assert (spread > 0.1).all()
    # a fractal, not noise: neighbouring pixels differ far less than a crop's spread
    assert (plasma[..., 1:] - plasma[..., :-1]).abs().mean() < 0.1 * spread.mean()
    assert fogged.mean() > digits.mean() + 0.1  # on average the fog lifts the dark background


def test_fog_leaves_a_black_image_black():
    assert corrupt(torch.zeros(3, 1, 28, 28), "fog", seed=0).abs().max() == 0


def test_spatter_blends_each_changed_pixel_with_mud_grey_at_a_weight_of_at_least_point_eight(digits):
    spattered = corrupt(digits, "spatter", seed=0).to(torch.float64)
    original = digits.to(torch.float64)
    changed = (spattered - original).abs() > 1e-6
    weight = (spattered - original)[changed] / (63 / 255 - original[changed])
    assert weight.min() >= 0.8 - 1e-5 and weight.max() <= 1 + 1e-5
    assert 0.02 < changed.double().mean() < 0.6  # blobs, neither nothing nor everything


def test_a_line_layer_is_one_on_the_line_and_log_decays_to_zero_within_two_rows():
    layer = line_layers(*(torch.tensor([value]) for value in (0.0, 10.0, 27.0, 10.0)))[0]
    assert torch.equal(layer[10, :27], torch.ones(27, dtype=torch.float64))
    below = torch.full((27,), 1 + math.log(1 - 1 / 2.3), dtype=torch.float64)
    torch.testing.assert_close(layer[11, :27], below)
    assert layer[12].abs().sum() == 0 and layer[:, 27].abs().sum() == 0  # ln(1 - 2/2.3) + 1 < 0
    vertical = line_layers(*(torch.tensor([value]) for value in (5.0, 0.0, 5.0, 20.0)))[0]
    assert vertical.abs().sum() == 0


def test_dotted_line_only_adds_light_on_the_dashes_and_at_most_three_rows_a_column(digits):
    dotted = corrupt(digits, "dotted_line", seed=0)
    added = dotted - digits
    assert (added >= 0).all()
    columns_lit = (added > 0).any(dim=(0, 1, 2))
    dashes = (torch.arange(28) // 2) % 2 == 1
    assert not columns_lit[~dashes].any() and columns_lit[dashes][:-1].all()
    assert ((added > 0).sum(dim=2) <= 3).all()


def test_zigzag_segments_of_a_level_line_are_the_reference_peaks():
    pieces = zigzag_segments(10, 10)
    points = [piece[:2] for piece in pieces] + [pieces[-1][2:]]
    expected = [(2, 10), (4, 12), (8, 8), (12, 12), (16, 8), (20, 12), (24, 8), (25, 10 - 1 / 3)]
    assert len(points) == len(expected)
    for point, want in zip(points, expected, strict=True):
        assert point == pytest.approx(want)


def test_zigzag_only_adds_light_between_its_end_columns(digits):
    zigzagged = corrupt(digits, "zigzag", seed=0)
    added = zigzagged - digits
    assert (added >= 0).all()
    lit = (added > 0).any(dim=(0, 1, 2)).nonzero().squeeze(1)
    assert lit.min() >= 2 and lit.max() <= 25
    assert ((added > 0).flatten(1).sum(dim=1) > 0).float().mean() > 0.9


def test_canny_outlines_a_square_one_pixel_wide_on_its_half_grey_border():
    square = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    square[..., 8:20, 8:20] = 0.5
    square[..., 9:19, 9:19] = 1.0  # the steps are centred on rows and columns 8 and 19
    edges = canny_edges(square)[0, 0]
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    outline = torch.zeros(28, 28)
    outline[[8, 19], 9:19] = outline[9:19, [8, 19]] = 1.0  # the four sides, corners cut diagonally
    outline[[9, 9, 18, 18], [9, 18, 9, 18]] = 1.0
    torch.testing.assert_close(edges, outline.to(torch.float64))


def test_canny_edges_of_real_digits_lie_on_the_stroke_boundary(digits):
    edges = corrupt(digits, "canny_edges")
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    assert (edges.sum(dim=(1, 2, 3)) >= 15).all()
    near_stroke = torch.nn.functional.max_pool2d((digits > 0.5).float(), 5, stride=1, padding=2) > 0
    near_background = torch.nn.functional.max_pool2d((digits < 0.5).float(), 5, stride=1, padding=2) > 0
    assert (near_stroke & near_background)[edges > 0].all()
    assert edges[..., 0, :].sum() == 0 and edges[..., :, 0].sum() == 0


def test_glass_blur_moves_ink_at_most_one_column_right_per_pass_and_keeps_its_amount():
    dots = torch.zeros(4, 1, 28, 28)
    dots[..., 14, 14] = 1.0
    blurred = corrupt(dots, "glass_blur", seed=0)
    # the swaps run from the bottom-right corner up and left: a value swapped up or left can be swapped
    # again in the same pass, one swapped down or right cannot; the blurs run down the columns only
    assert blurred[..., 17:].sum() == 0 and blurred[..., :14].sum() > 0
    torch.testing.assert_close(blurred.sum(dim=(1, 2, 3)), torch.ones(4), atol=0.05, rtol=0)


def test_motion_blur_spreads_a_dot_along_one_direction_within_45_degrees_of_the_rows():
    dots = torch.zeros(8, 1, 28, 28)
    dots[..., 14, 14] = 1.0
    blurred = corrupt(dots, "motion_blur", seed=0)
    for image in blurred[:, 0]:
        rows, columns = image.nonzero(as_tuple=True)
        # each output pixel gathers from taps ahead of it, so the trail points back from the dot
        assert (columns <= 14).all()
        assert ((14 - rows).abs() <= (14 - columns) + 1).all()
        assert abs(float(image.sum()) - 1.0) < 0.05
