"""The emulator's CPU "model": what a user sees when the state changes the effect.

Frames here are small (a few hundred pixels across) so the whole file runs in seconds; the
effects work the same at every size, and ``benchmarks/effects.py`` covers the model sizes.
"""

from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor

import attrs
import av
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decart_sync.emulator import _planes, effects
from decart_sync.emulator.effects import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    STYLES,
    Effect,
    InvalidReferenceImage,
    ReferenceImage,
    decode_reference_image,
    effect_for,
)

WIDTH, HEIGHT = 320, 176  # the output size most tests ask for
# A visible change: the mean absolute difference over all Y, U and V bytes, in code values.
VISIBLE = 6.0

Bytes = npt.NDArray[np.uint8]


# ---------------------------------------------------------------- helpers


def scene(width: int = 320, height: int = 180, shift: int = 0) -> av.VideoFrame:
    """A yuv420p picture with something for every effect to work on: a luma ramp across the
    whole range, a fine texture, a bright square with hard edges, and colour everywhere."""
    rng = np.random.default_rng(1)
    cols = np.arange(width)[np.newaxis, :]
    luma = 16 + (cols + shift) * 219 // width + rng.integers(-8, 9, size=(height, width))
    luma[height // 4 : height // 2, width // 4 : width // 2] = 230
    c_rows, c_cols = np.mgrid[0 : height // 2, 0 : width // 2]
    u = 128 + 80 * np.sin(c_cols / 9.0)
    v = 128 + 80 * np.cos(c_rows / 7.0)
    stacked = np.concatenate([np.clip(p, 16, 240).astype(np.uint8).ravel() for p in (luma, u, v)])
    return av.VideoFrame.from_ndarray(stacked.reshape(-1, width), format="yuv420p")


def planes(frame: av.VideoFrame) -> list[Bytes]:
    """The Y, U and V planes of a yuv420p frame of any size (odd ones included)."""
    assert frame.format.name == "yuv420p"
    views = []
    for plane in frame.planes:
        flat = np.frombuffer(memoryview(plane), dtype=np.uint8)[: plane.line_size * plane.height]
        views.append(flat.reshape(plane.height, plane.line_size)[:, : plane.width])
    return views


def pixels(frame: av.VideoFrame) -> Bytes:
    """All Y, then U, then V bytes of a yuv420p frame, as one flat array."""
    return np.concatenate([plane.reshape(-1) for plane in planes(frame)])


def difference(a: av.VideoFrame, b: av.VideoFrame) -> float:
    return float(np.abs(pixels(a).astype(np.int16) - pixels(b)).mean())


def plane_means(frame: av.VideoFrame) -> tuple[float, float, float]:
    y, u, v = (float(plane.mean()) for plane in planes(frame))
    return y, u, v


def encode_image(rgb: Bytes, codec: str, pix_fmt: str, muxer: str = "image2pipe") -> bytes:
    """``rgb`` encoded as a one-picture file, the way a client would send a reference image."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], pix_fmt
        picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        for packet in [*stream.encode(picture), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def solid(rgb: tuple[int, int, int], width: int = 64, height: int = 48) -> Bytes:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = rgb
    return image


def png(rgb: Bytes) -> bytes:
    return encode_image(rgb, "png", "rgb24")


PASSTHROUGH = effect_for(None, None)


# ---------------------------------------------------------------- passthrough


def test_passthrough_only_scales() -> None:
    source = scene(320, 180)
    out = PASSTHROUGH.render(source, WIDTH, HEIGHT)
    assert (out.format.name, out.width, out.height) == ("yuv420p", WIDTH, HEIGHT)
    assert difference(out, source.reformat(WIDTH, HEIGHT, "yuv420p")) < 1.0


def test_passthrough_at_the_model_size_is_an_exact_copy_in_a_new_frame() -> None:
    source = scene(WIDTH, HEIGHT)
    out = PASSTHROUGH.render(source, WIDTH, HEIGHT)
    assert out is not source
    assert np.array_equal(pixels(out), pixels(source))
    # The output is the caller's to keep: it shares no memory with the input.
    planes(out)[0][...] = 0
    assert planes(source)[0].any()


def test_any_input_format_and_size_is_accepted() -> None:
    rgb = np.zeros((90, 160, 3), dtype=np.uint8)
    rgb[:, :80] = (200, 30, 30)
    out = PASSTHROUGH.render(av.VideoFrame.from_ndarray(rgb, format="rgb24"), WIDTH, HEIGHT)
    assert (out.format.name, out.width, out.height) == ("yuv420p", WIDTH, HEIGHT)
    back = out.to_ndarray(format="rgb24").astype(int)
    assert np.abs(back[HEIGHT // 2, WIDTH // 8] - (200, 30, 30)).max() < 12


def test_full_range_input_comes_out_in_video_range() -> None:
    # A webcam or JPEG hands over full-range YUV; a player expects video range from us.
    white = av.VideoFrame.from_ndarray(solid((255, 255, 255), WIDTH, HEIGHT), format="rgb24")
    full_range = white.reformat(format="yuvj420p")
    out = PASSTHROUGH.render(full_range, WIDTH, HEIGHT)
    assert abs(plane_means(out)[0] - 235) <= 1


def test_render_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        PASSTHROUGH.render(scene(), 0, HEIGHT)


# ---------------------------------------------------------------- styles


@pytest.mark.parametrize("style", STYLES, ids=lambda style: style.name)
def test_each_style_changes_the_picture_and_keeps_size_and_format(style: effects.Style) -> None:
    effect = effect_for(style.keywords[0], None)
    assert effect.name == style.name
    source = scene()
    out = effect.render(source, WIDTH, HEIGHT)
    assert (out.format.name, out.width, out.height) == ("yuv420p", WIDTH, HEIGHT)
    assert difference(out, PASSTHROUGH.render(source, WIDTH, HEIGHT)) > VISIBLE


def test_styles_look_different_from_one_another() -> None:
    source = scene()
    outputs = {
        s.name: effect_for(s.keywords[0], None).render(source, WIDTH, HEIGHT) for s in STYLES
    }
    names = sorted(outputs)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert difference(outputs[first], outputs[second]) > 2.0, (first, second)


def test_noir_and_sketch_are_colourless() -> None:
    for prompt in ("film noir", "pencil sketch"):
        out = effect_for(prompt, None).render(scene(), WIDTH, HEIGHT)
        _, u, v = planes(out)
        assert np.abs(np.concatenate([u, v]).astype(int) - 128).max() <= 3, prompt


def test_negative_inverts_luma() -> None:
    source = scene(WIDTH, HEIGHT)
    out = effect_for("negative", None).render(source, WIDTH, HEIGHT)
    y_in = planes(source)[0].astype(int)
    y_out = planes(out)[0].astype(int)
    inside = (y_in >= 16) & (y_in <= 235)
    assert np.array_equal(y_out[inside], 251 - y_in[inside])


def test_pixel_is_made_of_blocks() -> None:
    out = effect_for("8-bit", None).render(scene(640, 360), 640, 352)
    y = planes(out)[0]
    block = 640 // 80
    assert np.array_equal(y[:, ::block], y[:, 1::block])  # neighbours in a block are equal
    assert np.array_equal(y[::block], y[1::block])


@pytest.mark.parametrize("size", [(400, 300), (401, 300), (8, 6)], ids=str)
def test_lookup_tables_map_every_pixel_whatever_the_row_layout(size: tuple[int, int]) -> None:
    # Tables are applied two pixels at a time where rows allow it, one at a time elsewhere
    # (odd widths, small planes, strided views): the result must not depend on which.
    width, height = size
    table = np.random.default_rng(5).integers(0, 256, size=256, dtype=np.uint8)
    frame = scene(width + width % 2, height)
    source = planes(frame)[0][:, :width]
    out = np.zeros((height, width + 8), dtype=np.uint8)[:, :width]  # padded rows, like a plane
    _planes.apply_lut(table, source, out)
    assert np.array_equal(out, table[source])
    _planes.apply_lut(table, out, out)  # in place
    assert np.array_equal(out, table[table[source]])


# ---------------------------------------------------------------- keyword matching


@pytest.mark.parametrize(
    ("style", "keyword"),
    [(style.name, keyword) for style in STYLES for keyword in style.keywords],
)
def test_every_keyword_selects_its_style_in_any_case(style: str, keyword: str) -> None:
    assert effect_for(f"a {keyword} portrait", None).name == style
    assert effect_for(f"A {keyword.upper()}, PLEASE!", None).name == style
    assert effect_for(keyword.title(), None).name == style


@pytest.mark.parametrize(
    "prompt",
    [
        "a sketchy neighbourhood",
        "cartoonish",
        "Coldplay concert",
        "warmth",
        "pixelsort",
        "8-bits",
        "webcomic",
        "supercold",
        "a_neon_sign",
    ],
)
def test_keywords_match_whole_words_only(prompt: str) -> None:
    assert effect_for(prompt, None).name == "grade"


@pytest.mark.parametrize(
    ("prompt", "style"),
    [
        ("a warm anime sketch", "cartoon"),  # cartoon comes first in the table
        ("winter sunset", "warm"),  # table order, not word order
        ("blurry pencil drawing", "sketch"),
        ("black-and-white photo", "noir"),
        ("black\n and  white", "noir"),
        ("(neon) lights", "neon"),
    ],
)
def test_the_first_style_in_table_order_wins(prompt: str, style: str) -> None:
    assert effect_for(prompt, None).name == style


def test_docstring_documents_every_style_and_keyword() -> None:
    doc = effects.__doc__ or ""
    assert len(STYLES) >= 10
    assert len({style.name for style in STYLES}) == len(STYLES)
    flat_doc = " ".join(doc.split())
    for style in STYLES:
        assert re.search(rf"^{style.name}\s", doc, re.MULTILINE), style.name
        assert style.description
        for keyword in style.keywords:
            assert keyword in flat_doc, keyword
    assert "enhance" in doc


# ---------------------------------------------------------------- the prompt-derived grade


def test_an_unknown_prompt_gets_a_deterministic_visible_grade() -> None:
    source = scene()
    first = effect_for("a quiet harbour at dawn", None)
    second = effect_for("a quiet harbour at dawn", None)
    assert first.name == second.name == "grade"
    out = first.render(source, WIDTH, HEIGHT)
    assert np.array_equal(pixels(out), pixels(second.render(source, WIDTH, HEIGHT)))
    assert difference(out, PASSTHROUGH.render(source, WIDTH, HEIGHT)) > VISIBLE


def test_different_prompts_get_different_grades() -> None:
    source = scene()
    prompts = ["a red fox", "a blue whale", "a quiet harbour at dawn", "robots playing chess"]
    outputs = [effect_for(prompt, None).render(source, WIDTH, HEIGHT) for prompt in prompts]
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            assert difference(outputs[i], outputs[j]) > 1.0, (prompts[i], prompts[j])


def test_the_grade_ignores_case_and_spacing() -> None:
    source = scene()
    a = effect_for("A Red  Fox", None).render(source, WIDTH, HEIGHT)
    b = effect_for("a red fox\n", None).render(source, WIDTH, HEIGHT)
    assert np.array_equal(pixels(a), pixels(b))


def test_the_grade_is_visible_even_on_a_flat_grey_picture() -> None:
    grey = av.VideoFrame.from_ndarray(solid((128, 128, 128), WIDTH, HEIGHT), format="rgb24")
    for prompt in ("a red fox", "a blue whale", "x", "0"):
        out = effect_for(prompt, None).render(grey, WIDTH, HEIGHT)
        assert difference(out, PASSTHROUGH.render(grey, WIDTH, HEIGHT)) > 3.0, prompt


def test_a_blank_prompt_is_no_prompt() -> None:
    assert effect_for("", None).name == "passthrough"
    assert effect_for(" \n", None).name == "passthrough"


_SCENE = scene(96, 54)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompt=st.text(max_size=40).filter(str.strip),
    width=st.integers(2, 120),
    height=st.integers(2, 80),
)
def test_any_prompt_gives_a_visible_effect_of_the_requested_size(
    prompt: str, width: int, height: int
) -> None:
    effect = effect_for(prompt, None)
    out = effect.render(_SCENE, width, height)
    assert (out.format.name, out.width, out.height) == ("yuv420p", width, height)
    assert out.to_ndarray(format="rgb24").shape == (height, width, 3)
    assert np.array_equal(pixels(out), pixels(effect.render(_SCENE, width, height)))
    if width >= 32 and height >= 32:
        assert difference(out, PASSTHROUGH.render(_SCENE, width, height)) > 3.0


# ---------------------------------------------------------------- palette transfer


def test_a_reference_image_pulls_the_colours_towards_its_palette() -> None:
    purple = decode_reference_image(png(solid((170, 40, 200))))
    effect = effect_for(None, purple)
    assert effect.name == "palette"
    source = scene()
    before = plane_means(PASSTHROUGH.render(source, WIDTH, HEIGHT))
    after = plane_means(effect.render(source, WIDTH, HEIGHT))
    for plane, target in enumerate(purple.means):
        # At least halfway there on every plane.
        assert abs(after[plane] - target) < 0.5 * abs(before[plane] - target) + 1, plane


def test_a_solid_colour_tints_the_picture_without_flattening_it() -> None:
    red = decode_reference_image(png(solid((220, 30, 30))))
    source = scene()
    out = effect_for(None, red).render(source, WIDTH, HEIGHT)
    luma_in = planes(PASSTHROUGH.render(source, WIDTH, HEIGHT))[0].std()
    assert planes(out)[0].std() >= 0.45 * luma_in


def test_palette_transfer_comes_after_the_style() -> None:
    blue = decode_reference_image(png(solid((20, 40, 220))))
    effect = effect_for("film noir", blue)
    assert effect.name == "noir+palette"
    out = effect.render(scene(), WIDTH, HEIGHT)
    # Noir alone has no colour at all; the palette then moves it towards blue (U up, V down).
    _, u, v = plane_means(out)
    assert abs(u - blue.means[1]) < 3 and abs(v - blue.means[2]) < 3
    assert u > 128 + 20 and v < 128 - 5


def test_a_reference_image_on_a_grade() -> None:
    image = decode_reference_image(png(solid((30, 160, 60))))
    assert effect_for("robots playing chess", image).name == "grade+palette"


# ---------------------------------------------------------------- reference images


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "muxer"),
    [
        ("png", "rgb24", "image2pipe"),
        ("mjpeg", "yuvj420p", "image2pipe"),
        ("libwebp", "yuv420p", "image2pipe"),
        ("bmp", "bgr24", "image2pipe"),
        ("gif", "rgb8", "gif"),
    ],
)
def test_common_image_formats_decode_to_their_colour_statistics(
    codec: str, pix_fmt: str, muxer: str
) -> None:
    image = decode_reference_image(encode_image(solid((255, 0, 0), 80, 60), codec, pix_fmt, muxer))
    assert (image.width, image.height) == (80, 60)
    # Pure red in video range (BT.601): Y 81, U 90, V 240, the same for every format.
    assert np.allclose(image.means, (81, 90, 240), atol=4)
    assert max(image.stds) < 3


def test_a_reference_image_keeps_statistics_not_pixels() -> None:
    image = decode_reference_image(png(solid((10, 200, 10))))
    assert isinstance(image, ReferenceImage)
    assert {field.name for field in attrs.fields(ReferenceImage)} == {
        "width",
        "height",
        "means",
        "stds",
    }
    assert image == decode_reference_image(png(solid((10, 200, 10))))


_SAMPLE_JPEG = encode_image(
    np.random.default_rng(3).integers(0, 256, size=(48, 64, 3), dtype=np.uint8),
    "mjpeg",
    "yuvj420p",
)


def _truncated_png() -> bytes:
    data = png(solid((1, 2, 3)))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"definitely not an image" * 4, "not a recognised image format"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "corrupt"),
        (b"\xff\xd8\xff" + b"\x00" * 64, "corrupt"),
        (b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES), f"more than the {MAX_IMAGE_BYTES} bytes"),
    ],
    ids=["empty", "garbage", "png-header-only", "jpeg-header-only", "too-many-bytes"],
)
def test_unusable_images_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidReferenceImage, match=re.escape(reason)) as caught:
        decode_reference_image(data)
    assert str(caught.value).startswith("invalid image: ")
    assert isinstance(caught.value, ValueError)


def test_a_truncated_image_is_rejected() -> None:
    with pytest.raises(InvalidReferenceImage, match="corrupt"):
        decode_reference_image(_truncated_png())


def test_an_image_wider_than_the_limit_is_rejected() -> None:
    wide = np.zeros((8, MAX_IMAGE_SIDE + 8, 3), dtype=np.uint8)
    with pytest.raises(InvalidReferenceImage, match=f"{MAX_IMAGE_SIDE + 8}x8 is larger than"):
        decode_reference_image(png(wide))


def test_a_small_file_claiming_a_huge_picture_is_rejected_without_decoding_it() -> None:
    # 4200x4200 grey compresses to a few kilobytes but would decode to 17 megapixels.
    grey = np.zeros((4200, 4200), dtype=np.uint8)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 4200, 4200, "gray"
        for packet in [
            *stream.encode(av.VideoFrame.from_ndarray(grey, format="gray")),
            *stream.encode(None),
        ]:
            container.mux(packet)
    data = buffer.getvalue()
    assert len(data) < 100_000
    with pytest.raises(InvalidReferenceImage, match=f"larger than {MAX_IMAGE_SIDE}x"):
        decode_reference_image(data)


_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"GIF89a", b"BM"]


@settings(max_examples=150, deadline=None)
@given(magic=st.sampled_from(_MAGICS), body=st.binary(max_size=300))
def test_malformed_images_never_escape_as_anything_but_invalid_reference_image(
    magic: bytes, body: bytes
) -> None:
    try:
        decode_reference_image(magic + body)
    except InvalidReferenceImage as error:
        assert str(error).startswith("invalid image: ")


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1), flips=st.lists(st.integers(min_value=0), max_size=4))
def test_damaged_real_images_are_decoded_or_rejected_cleanly(cut: int, flips: list[int]) -> None:
    # Cut the end off, then flip bits anywhere after the signature.
    data = bytearray(_SAMPLE_JPEG[: max(4, len(_SAMPLE_JPEG) - cut % len(_SAMPLE_JPEG))])
    for position in flips:
        data[3 + position % (len(data) - 3)] ^= 0x5A
    try:
        decode_reference_image(bytes(data))
    except InvalidReferenceImage as error:
        assert str(error).startswith("invalid image: ")


def test_image_data_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        decode_reference_image("iVBORw0KGgo=")  # type: ignore[arg-type]


# ---------------------------------------------------------------- determinism and threads


ALL_EFFECTS = [
    PASSTHROUGH,
    *(effect_for(style.keywords[0], None) for style in STYLES),
    effect_for("a quiet harbour at dawn", None),
    effect_for("cartoon", ReferenceImage(64, 64, (120.0, 140.0, 110.0), (40.0, 8.0, 12.0))),
]


@pytest.mark.parametrize("effect", ALL_EFFECTS, ids=lambda effect: effect.name)
def test_every_effect_renders_tiny_and_odd_sizes(effect: Effect) -> None:
    for width, height in ((1, 1), (2, 2), (3, 5), (33, 17), (161, 91)):
        out = effect.render(scene(), width, height)
        assert (out.format.name, out.width, out.height) == ("yuv420p", width, height)


def test_effects_are_immutable() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        PASSTHROUGH.name = "sketch"  # type: ignore[misc]


@pytest.mark.parametrize("effect", ALL_EFFECTS, ids=lambda effect: effect.name)
def test_render_is_deterministic_across_threads(effect: Effect) -> None:
    # Several threads share one effect and the input frames, which need scaling (so each thread
    # uses its own scalers): every result is byte-identical to a lone render.
    frames = [scene(640, 360, shift) for shift in (0, 37)]
    expected = [pixels(effect.render(frame, WIDTH, HEIGHT)) for frame in frames]

    def render(index: int) -> Bytes:
        return pixels(effect.render(frames[index % 2], WIDTH, HEIGHT))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(render, range(24)))
    for index, result in enumerate(results):
        assert np.array_equal(result, expected[index % 2]), index
