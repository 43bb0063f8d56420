"""A store dataset's fits drawn over the dataset's own images, with the keypoints they fit.

Joins what the store holds (``Fits`` rows: pose, betas, cam_t in each row's crop frame) with
the dataset they belong to (``KeypointDataset``: boxes, keypoints, image names) and its image
folder. Each row is drawn with the camera of its box (``fitting.evaluation.overlay.ImageCamera.from_box``;
for datasets whose image files are the crops themselves, the whole image: see
``training.images.crop_boxes``), so the mesh lands where the fit projects its joints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.data.dataset import KeypointDataset, crop_to_image
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX
from spinfits.fitting.evaluation.overlay import FitRenderer, FitViews, ImageCamera
from spinfits.store import DatasetInfo, Fits
from spinfits.training.images import crop_boxes, load_images

logger = logging.getLogger(__name__)


class DatasetOverlays:
    """Draws rows of one dataset: ``views(rows, fits)`` (whole images) or ``thumbnails`` (boxes)."""

    def __init__(self, renderer: FitRenderer, dataset: KeypointDataset, images_dir: str | Path) -> None:
        self.renderer = renderer
        self.dataset = dataset
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise InputError(
                f"image folder {self.images_dir} does not exist; pass the folder the dataset's "
                f"imgname entries are relative to"
            )
        self.center, self.scale = crop_boxes(
            dataset.center, dataset.scale, dataset.images_are_crops, dataset.crop_res
        )

    def check_matches(self, info: DatasetInfo) -> None:
        """``InputError`` unless the store dataset ``info`` was made from this dataset file."""
        if info.n_rows != len(self.dataset) or info.dataset_fingerprint != self.dataset.fingerprint:
            raise InputError(
                f"store dataset {info.name!r} was made from another file ({info.n_rows} rows, "
                f"fingerprint {info.dataset_fingerprint}) than {self.dataset.source} "
                f"({len(self.dataset)} rows, fingerprint {self.dataset.fingerprint}); pass the "
                f"dataset npz that `spinfits precompute` filled it from"
            )

    def image_keypoints(self, row: int) -> np.ndarray:
        """(49, 3) the row's keypoints in its image: pixels x, y, confidence."""
        keypoints = self.dataset.keypoints[row].astype(np.float64)
        out = keypoints.copy()
        out[:, :2] = crop_to_image(
            keypoints[None, :, :2],
            self.center[row : row + 1],
            self.scale[row : row + 1],
            self.dataset.crop_res,
        )[0]
        return out

    def views(
        self, rows: np.ndarray, fits: Fits, side: bool = True, margin: float | None = None
    ) -> list[FitViews]:
        """Front (over the image, with the row's keypoints) and side views of ``fits`` (one per
        row of ``rows``, e.g. ``store.read(name, rows=rows)``).

        margin: None draws each whole image; a number draws only the part of the image around
        the row's box, ``margin`` times its side (cut to the image), which is faster.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(fits) != rows.size:
            raise InputError(f"fits has {len(fits)} rows for {rows.size} dataset rows; pass one fit per row")
        bad = rows[(rows < 0) | (rows >= len(self.dataset))]
        if bad.size:
            raise InputError(f"rows {bad.tolist()} are outside the dataset's 0..{len(self.dataset) - 1}")
        images = load_images([self.images_dir / self.dataset.imgname[row] for row in rows])
        vertices = self.renderer.vertices(fits.pose, fits.betas)
        out = []
        for index, (row, image) in enumerate(zip(rows, images)):
            camera = ImageCamera.from_box(
                self.center[row], self.scale[row], self.dataset.crop_res, self.dataset.focal_length
            )
            keypoints = self.image_keypoints(row)
            if margin is not None:
                top, bottom, left, right = self._around_box(row, image.shape[:2], margin)
                image, camera = image[top:bottom, left:right], camera.cut(left, top)
                keypoints[:, :2] -= (left, top)
            one = slice(index, index + 1)
            out.append(self.renderer.views(image, vertices[one], fits.cam_t[one], camera, keypoints, side))
        logger.debug("drew %d rows of %s", rows.size, self.dataset.source)
        return out

    def _around_box(self, row: int, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
        """Rows top:bottom, columns left:right of the image around the row's box (never empty)."""
        height, width = shape
        half = BOX_SCALE_PX / 2 * self.scale[row] * margin
        x, y = self.center[row]
        left, right = int(max(0, np.floor(x - half))), int(min(width, np.ceil(x + half)))
        top, bottom = int(max(0, np.floor(y - half))), int(min(height, np.ceil(y + half)))
        if right <= left or bottom <= top:  # the box lies outside its image: show all of it
            return 0, height, 0, width
        return top, bottom, left, right

    def thumbnails(
        self, rows: np.ndarray, fits: Fits, size: int = 320, margin: float = 1.25
    ) -> list[np.ndarray]:
        """Front views of the part of each image around the row's box (``margin`` times its side),
        scaled to ``size`` px on their longer side: (h, w, 3) uint8 each."""
        from PIL import Image

        pictures = []
        for view in self.views(rows, fits, side=False, margin=margin):
            factor = size / max(view.front.shape[:2])
            shape = (max(1, round(view.front.shape[1] * factor)), max(1, round(view.front.shape[0] * factor)))
            pictures.append(np.asarray(Image.fromarray(view.front).resize(shape, Image.Resampling.LANCZOS)))
        return pictures
