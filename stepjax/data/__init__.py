"""Data layer: readers/writers, preprocessing, procedural walkers, splits.

Array convention: gaits float32 ``(N, T, 16, 3)`` (metres, Y up), labels int32 ``(N,)`` with
0 Angry, 1 Neutral, 2 Happy, 3 Sad (``stepjax.LABEL_NAMES``).
"""

from stepjax import _lazy_submodules

__getattr__ = _lazy_submodules(__name__, ("bvh", "egait", "gait_stats", "pipeline", "preprocess", "splits", "walkers"))
