"""The rigid (plus optional scale) transform that maps a cell's aligned crop back into its field.

Aligned frame: origin at the nucleus centroid, z unchanged (up), x along the cell's long axis in the y/x
plane, oriented so that the cell's mass is skewed towards +x, and y mirrored when needed so that it is skewed
towards +y (handedness). ``d = A q``: ``q`` aligned µm, ``d`` field µm offsets from the centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Alignment", "fit_alignment"]


@dataclass(frozen=True)
class Alignment:
    """Rotation about z by ``angle_rad``, mirror of aligned y when ``flip_y``, isotropic ``scale`` (≥ 1)."""

    centroid_um: tuple[float, float, float]
    angle_rad: float = 0.0
    flip_y: bool = False
    scale: float = 1.0

    def matrix(self) -> np.ndarray:
        """A (3×3): field offsets (z, y, x) µm from aligned coordinates (z, y, x) µm."""
        c, s = np.cos(self.angle_rad), np.sin(self.angle_rad)
        f = -1.0 if self.flip_y else 1.0
        return self.scale * np.array([[1.0, 0.0, 0.0], [0.0, c * f, s], [0.0, -s * f, c]])

    def to_field(self, q_um: np.ndarray) -> np.ndarray:
        """Aligned points (N, 3) µm → field points (N, 3) µm."""
        return np.asarray(q_um) @ self.matrix().T + np.asarray(self.centroid_um)

    def to_aligned(self, p_um: np.ndarray) -> np.ndarray:
        """Field points (N, 3) µm → aligned points (N, 3) µm."""
        return (np.asarray(p_um) - np.asarray(self.centroid_um)) @ np.linalg.inv(self.matrix()).T

    def as_row(self) -> dict[str, float | bool]:
        z, y, x = self.centroid_um
        return {
            "align_centroid_z_um": z, "align_centroid_y_um": y, "align_centroid_x_um": x,
            "align_angle_rad": self.angle_rad, "align_flip_y": self.flip_y, "align_scale": self.scale,
        }  # fmt: skip


def fit_alignment(cell_points_um: np.ndarray, centroid_um: np.ndarray, *, align: bool = True) -> Alignment:
    """Alignment of a cell (its voxel centres in field µm) about the nucleus centroid.

    The long axis is the major eigenvector of the cell's lateral (y, x) covariance; the sign ambiguities of an
    eigenvector are resolved by the third moments, so the same cell turned or mirrored in the field maps to the
    same aligned crop.
    """
    centroid = tuple(float(v) for v in centroid_um)
    if not align or len(cell_points_um) < 3:
        return Alignment(centroid)  # type: ignore[arg-type]
    d = np.asarray(cell_points_um, dtype=np.float64) - np.asarray(centroid)
    yx = d[:, 1:] - d[:, 1:].mean(axis=0)
    w, v = np.linalg.eigh(np.cov(yx.T))
    vy, vx = v[:, np.argmax(w)]
    angle = float(np.arctan2(vy, vx))
    q = Alignment(centroid, angle).to_aligned(np.asarray(cell_points_um))  # type: ignore[arg-type]
    qx = q[:, 2] - q[:, 2].mean()
    if np.mean(qx**3) < 0:
        angle = float(np.arctan2(-vy, -vx))
        q = Alignment(centroid, angle).to_aligned(np.asarray(cell_points_um))  # type: ignore[arg-type]
    qy = q[:, 1] - q[:, 1].mean()
    flip = bool(np.mean(qy**3) < 0)
    return Alignment(centroid, angle, flip)  # type: ignore[arg-type]
