"""Camera geometry under its old name: quaternion rotation, world <-> camera, projection,
screen normalisation and the packaged calibration.

Everything here lives in `diffupose.geometry` (`geometry.rotations`, `geometry.projection`,
`geometry.camera`, where the conventions are written down); this module re-exports those
names so that `from diffupose.camera import ...` keeps working. New code imports
`diffupose.geometry`.
"""
from __future__ import annotations

from .geometry.camera import Camera, CameraExtrinsics, CameraIntrinsics, CameraSet, load_cameras
from .geometry.projection import (camera_to_world, image_coordinates, normalize_intrinsics,
                                  normalize_screen_coordinates, project_pinhole, project_to_2d, world_to_camera)
from .geometry.rotations import qinverse, qrot, quaternion_from_matrix, quaternion_to_matrix

__all__ = [
    "qrot", "qinverse", "quaternion_to_matrix", "quaternion_from_matrix",
    "world_to_camera", "camera_to_world", "project_to_2d", "project_pinhole",
    "normalize_screen_coordinates", "image_coordinates", "normalize_intrinsics",
    "CameraIntrinsics", "CameraExtrinsics", "Camera", "CameraSet", "load_cameras",
]
