"""Geometry, the lowest floor above the base helpers: rotations (axis matrices, Euler angles,
quaternions, shortest arcs, the SVD rotation fit), projection (rigid transforms, perspective
projection with lens distortion and its inverse, root placement, screen normalisation) and
camera calibration (`camera`), and the skeletons (`skeleton`: joints, parents, left/right, the GCN
adjacency). Pure numpy; of the package it imports only `errors` and `utils` (the base floor).
"""
from .camera import Camera, CameraExtrinsics, CameraIntrinsics, CameraSet, camera_distortion, load_cameras
from .projection import (batched_distortion, batched_intrinsics, camera_to_world, distort, estimate_root_translation,
                         fit_weak_perspective, image_coordinates, normalize_intrinsics, normalize_screen_coordinates,
                         project_camera, project_perspective, project_pinhole, project_to_2d, undistort,
                         undistort_points, world_to_camera)
from .rotations import (axis_rotation, euler_zxy_from_matrix, kabsch, matrix_from_euler, procrustes_align, qinverse,
                        qrot, quaternion_from_matrix, quaternion_to_matrix, rotation_x, rotation_y, rotation_z,
                        shortest_arc, svd_rotation)

__all__ = [
    "Camera", "CameraExtrinsics", "CameraIntrinsics", "CameraSet", "camera_distortion", "load_cameras",
    "batched_distortion", "batched_intrinsics", "camera_to_world", "distort", "estimate_root_translation",
    "fit_weak_perspective", "image_coordinates", "normalize_intrinsics", "normalize_screen_coordinates",
    "project_camera", "project_perspective", "project_pinhole", "project_to_2d", "undistort", "undistort_points",
    "world_to_camera",
    "axis_rotation", "euler_zxy_from_matrix", "kabsch", "matrix_from_euler", "procrustes_align", "qinverse", "qrot",
    "quaternion_from_matrix", "quaternion_to_matrix", "rotation_x", "rotation_y", "rotation_z", "shortest_arc",
    "svd_rotation",
]
