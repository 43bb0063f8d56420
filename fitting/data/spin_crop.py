"""SPIN's crop convention, the one source of its numbers.

SPIN fits and trains in the crop frame: a ``CROP_RES`` px square cut around the person's box
(side ``BOX_SCALE_PX * scale`` in the original image), seen by a pinhole camera with focal length
``FOCAL_LENGTH`` px whose principal point is the crop's centre, ``(CROP_CENTER, CROP_CENTER)``.
The regressor's input side (``TrainConfig.input_res``) defaults to ``CROP_RES`` too (SPIN's
``IMG_RES``). Functions take these as defaults and accept others where a caller configures them.
"""

#: Side of SPIN's square crop in pixels (SPIN's ``constants.IMG_RES``).
CROP_RES = 224
#: Principal point of the crop camera, x and y, in pixels: the crop's centre.
CROP_CENTER = CROP_RES / 2.0
#: Focal length of the crop camera in pixels (SPIN's ``constants.FOCAL_LENGTH``).
FOCAL_LENGTH = 5000.0
#: SPIN's box scale: a dataset's ``scale`` is the person box's side in image pixels / 200.
BOX_SCALE_PX = 200.0
