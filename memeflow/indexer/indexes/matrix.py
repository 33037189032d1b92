"""The vectors a search scans, in memory: one float32 matrix, row i the document whose
`row` is i, grown by doubling so that n single upserts copy O(n) rows in all."""

import numpy as np


class VectorMatrix:
    """`array[:count]` holds the vectors; the rows beyond are room to grow."""

    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array = np.empty((0, 0), np.float32) if array is None else array
        self.count = 0 if array is None else len(array)

    def view(self) -> np.ndarray:
        """The stored rows, (count, dim), without a copy."""
        return self.array[: self.count]

    def reserve(self, count: int, dim: int) -> None:
        """Room for `count` rows of `dim` (a new dim only while empty); a MemoryError here
        changes nothing."""
        capacity, width = self.array.shape
        if width != dim:
            self.array = np.empty((max(count, 16), dim), np.float32)
        elif count > capacity:
            grown = np.empty((max(count, 2 * capacity), dim), np.float32)
            grown[: self.count] = self.array[: self.count]
            self.array = grown

    def put(self, rows: list[int], vectors: np.ndarray, count: int) -> None:
        """Writes vectors at rows (reserved), then `count` rows are in use."""
        self.array[rows] = vectors
        self.count = count

    def move(self, moves: list[tuple[int, int]]) -> None:
        """Repeats swap-deletes: the row `last` into `row`, one move at a time."""
        for row, last in moves:
            self.array[row] = self.array[last]
        self.count -= len(moves)

    def clear(self) -> None:
        self.array, self.count = np.empty((0, 0), np.float32), 0
