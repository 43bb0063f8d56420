"""Image folders of converted datasets: find images, check that named ones exist.

Image names (SPIN's ``imgname``) are POSIX paths relative to the images folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from spinfits.errors import InputError

#: Image file suffixes a folder's images may have (any case).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def listing(names: Sequence[str], limit: int = 10) -> str:
    """``'a', 'b', ... (N in all)``: the first ``limit`` names of a list for a message."""
    shown = ", ".join(repr(str(name)) for name in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_folder(folder: str | Path, flag: str, holding: str) -> Path:
    """``folder`` as a Path; an InputError naming ``flag`` when it is not a folder.

    ``holding`` says what the folder should hold, e.g. "the images".
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise InputError(f"{flag} {folder} {what}; expected the folder of {holding}")
    return folder


def find_images(images_dir: Path) -> dict[str, Path]:
    """Every image under ``images_dir`` (recursive), keyed by its relative path without suffix.

    Two images that differ only in suffix (``a.jpg``, ``a.png``) are an error: a name then
    matches neither for sure.
    """
    found: dict[str, list[Path]] = {}
    for path in sorted(images_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            key = path.relative_to(images_dir).with_suffix("").as_posix()
            found.setdefault(key, []).append(path)
    clashes = [
        f"{key} ({', '.join(p.suffix for p in paths)})" for key, paths in found.items() if len(paths) > 1
    ]
    if clashes:
        raise InputError(
            f"{len(clashes)} images in {images_dir} share a name with another image of another "
            f"suffix ({listing(clashes)}); keep one image per name"
        )
    return {key: paths[0] for key, paths in found.items()}


def check_images_exist(images_dir: Path, imgnames: Iterable[str], source: str) -> None:
    """Every ``imgname`` is a relative path inside ``images_dir`` to an existing file.

    ``source`` names where the names came from, for the message.
    """
    names = list(dict.fromkeys(str(name) for name in imgnames))
    escaping = [name for name in names if _escapes(name)]
    if escaping:
        raise InputError(
            f"{source}: {len(escaping)} image names are absolute or contain '..' "
            f"({listing(escaping)}); expected paths relative to the images folder"
        )
    missing = [name for name in names if not (images_dir / name).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of the {len(names)} images named in {source} are not in {images_dir} "
            f"({listing(missing)}); --images must be the folder those names are relative to"
        )


def _escapes(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")
