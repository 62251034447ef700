"""The one way the project opens an image: size-checked before decoding, RGB out, one-line errors.

Every image the project reads (an upload, a CLI argument, a dataset frame for an index, a
thumbnail) comes through :func:`open_image`, so a decompression bomb, a damaged file or an odd
colour mode gives the same one-line error naming the file everywhere.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# PIL's own warning threshold (~89.5 MP, about 270 MB as RGB): far above any camera frame, and
# low enough that one decoded image cannot exhaust a small server.
DEFAULT_MAX_PIXELS = 89_478_485
ENV_MAX_PIXELS = "SCENESCOPE_MAX_IMAGE_PIXELS"
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# PIL warns from inside Image.open about any image over its MAX_IMAGE_PIXELS, before our own check
# can refuse it with a clear error; below our limit it never fires (see open_image), so the warning
# would only ever be a second, vaguer line about an image we are refusing anyway.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image that cannot be used; the message is one line naming the file."""


def max_pixels() -> int:
    """The largest image (width x height) accepted: $SCENESCOPE_MAX_IMAGE_PIXELS, else the default."""
    raw = os.environ.get(ENV_MAX_PIXELS, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        raise ImageError(f"{ENV_MAX_PIXELS}={raw[:40]!r} is not a whole number of pixels") from None
    if value < 1:
        raise ImageError(f"{ENV_MAX_PIXELS}={value} must be at least 1")
    return value


def too_many_pixels(name: str, width: int, height: int, limit: int) -> str | None:
    """The one-line refusal for a ``width`` x ``height`` picture over ``limit`` pixels, else None."""
    pixels = int(width) * int(height)
    if pixels <= limit:
        return None
    return (f"{name}: {width}x{height} = {pixels:,} pixels is over the {limit:,}-pixel limit "
            f"(set {ENV_MAX_PIXELS} to change it)")


def regular_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file ("file not found", "not a regular file"), or None.

    A device or FIFO must be refused before opening: /dev/zero never ends and a FIFO blocks.
    """
    try:
        st = path.stat()  # follows links: a link to /dev/zero is a device
    except FileNotFoundError:
        return "broken link (its target does not exist)" if path.is_symlink() else "file not found"
    except (OSError, ValueError) as e:  # name too long, NUL byte, permission on a parent...
        return f"cannot be opened ({_short(e)})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = ("a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
                else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a special file")
        return f"not a regular file ({kind})"
    return None


def _short(e: BaseException, limit: int = 80, drop: str = "") -> str:
    """The first line of ``e``'s message, without ``drop`` (a file path), at most ``limit`` characters."""
    text = str(e).replace(f"'{drop}'", "").replace(drop, "").strip() if drop else str(e).strip()
    text = (text.splitlines() or [""])[0].strip() or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB of any mode. 16-bit greys are scaled to 8 bits (PIL's convert clips them at 255,
    which turns a normal 16-bit frame white); everything else is PIL's own conversion."""
    if im.mode in SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode in SIXTEEN_BIT_MODES or (arr.size and arr.max() > 255):
            arr = arr / 257.0  # 65535 -> 255
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return im.convert("RGB")


def open_image(source: str | Path | bytes, name: str | None = None, *,
               draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode the first picture of an image file (a path or its bytes) as a loaded RGB image.

    The pixel count is checked from the header before anything is decoded (limit:
    :func:`max_pixels`). ``draft`` lets JPEG decode at a reduced scale at least that size
    (thumbnails). Any failure raises :class:`ImageError`, one line naming ``name`` (default:
    the file name).
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "image"
        fp: str | io.BytesIO = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        label = name or path.name
        problem = regular_file_problem(path)
        if problem:
            raise ImageError(f"{label}: {problem}")
        if path.stat().st_size == 0:
            raise ImageError(f"{label}: empty file")
        fp = str(path)
    limit = max_pixels()
    # PIL raises its own DecompressionBombError at twice its MAX_IMAGE_PIXELS, inside open(); lift
    # it when our limit is higher so that our check (with the file name) is the one that speaks.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with Image.open(fp) as im:
            problem = too_many_pixels(label, *im.size, limit)
            if problem:
                raise ImageError(problem)
            if draft is not None:
                im.draft("RGB", draft)
            return _to_rgb(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        # Only above PIL's own threshold; its message holds the pixel count but not the file.
        found = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(f"{label}: {count} is over the {limit:,}-pixel limit "
                         f"(set {ENV_MAX_PIXELS} to change it)") from None
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode this image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not a readable image (not a format Pillow knows, or damaged)") from None
    except Exception as e:  # noqa: BLE001
        # A damaged file can fail inside any PIL plugin with any exception type (OSError,
        # SyntaxError, struct.error, IndexError, ZeroDivisionError... per Pillow's own fuzzing);
        # to the user they all mean the same thing.
        drop = fp if isinstance(fp, str) else ""
        raise ImageError(f"{label}: not a readable image ({type(e).__name__}: {_short(e, drop=drop)})") from None


__all__ = ["DEFAULT_MAX_PIXELS", "ENV_MAX_PIXELS", "ImageError", "max_pixels", "open_image",
           "regular_file_problem", "too_many_pixels"]
