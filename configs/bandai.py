"""STEP on real motion capture: the Bandai Namco Research Motion Dataset's emotion-styled walks (BVH).

    python train.py --config configs/bandai.py --workdir runs/bandai \
        --config.data.path=/path/to/Bandai-Namco-Research-Motiondataset/dataset/Bandai-Namco-Research-Motiondataset-1

20 clips (angry / normal = Neutral / happy / sad x walk, walk-back, walk-left, walk-right), ~4,100 frames at
30 fps, cut into ``data.num_frames``-frame windows every ``data.hop`` frames (stepjax.data.pipeline.
load_bandai_windows). The split is grouped by **clip** (``group_by_subject``: subjects are clip ids), so
overlapping windows of one clip never sit on both sides; with 5 clips per class that is 3 / 1 / 1 clips per
class for train / validation / test: expect noisy numbers (report balanced accuracy; sad clips are long,
normal has two 31-frame loops, so classes are imbalanced in windows). Without ``--config.data.path`` the
team checkout's ``../shared/data/bandai-walk`` is used when present.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import step  # noqa: E402

_TEAM_COPY = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "bandai-walk"))


def bandai_data(num_frames: int = 75, hop: int = 15):
    data = common.walkers_data()
    data.update(dict(source="bandai", path=_TEAM_COPY if os.path.isdir(_TEAM_COPY) else "", num_frames=num_frames,
                     length_policy="tile", split=(0.6, 0.2, 0.2), group_by_subject=True))
    data.hop = hop
    data.contents = ("walk", "walk-back", "walk-left", "walk-right")
    return data


def get_config():
    cfg = step.get_config()
    cfg.data = bandai_data()
    return cfg
