"""Pictures out: a caption drawn into an image, and PNG files or bytes that carry it as text.

Images are (H, W, 3) uint8 RGB arrays. ``add_caption`` keeps the image's size (the caption is
drawn on a dark band over its bottom edge), so an overlay stays pixel-aligned with its source.
The caption is also stored in the PNG's ``Description`` text chunk, where tools (and tests)
read it: ``PIL.Image.open(path).text["Description"]``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from spinfits.fitting.data.rgb_image import check_rgb_image


def add_caption(image: np.ndarray, text: str) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` with ``text`` in white on a dark band along its bottom edge.

    The font size follows the image (8 to 28 px); text wider than the image is wrapped at spaces
    onto more lines, so all of it stays readable on small images too.
    """
    from PIL import Image, ImageDraw, ImageFont

    check_rgb_image(image)
    height, width = image.shape[:2]
    size = max(8, min(height // 18, width // 24, 28))
    font = ImageFont.load_default(size=size)
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture, "RGBA")
    margin = max(2, size // 4)
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width - 2 * margin:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    step = size + max(1, size // 6)
    band = step * len(lines) + 2 * margin
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 170))
    for index, line in enumerate(lines):
        draw.text((margin, height - band + margin + index * step), line, fill=(255, 255, 255), font=font)
    return np.asarray(picture, dtype=np.uint8)


def encode_png(image: np.ndarray, caption: str | None = None) -> bytes:
    """PNG bytes of ``image``; ``caption`` goes into its ``Description`` text chunk."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    check_rgb_image(image)
    info = PngInfo()
    info.add_text("Software", "spinfits")
    if caption:
        info.add_text("Description", caption)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(path: str | Path, image: np.ndarray, caption: str | None = None) -> Path:
    """Write ``image`` to ``path`` as PNG (folders made), ``caption`` in its text; returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image, caption))
    return path
