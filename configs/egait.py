"""STEP on E-Gait HDF5 files on disk (download E-Gait yourself; nothing is fetched at run time).

    python train.py --config configs/egait.py --workdir runs/egait \
        --config.data.path=/data/E-Gait/features.h5 --config.data.labels_path=/data/E-Gait/labels.h5

ELMD (features_ELMD.h5, up to 240 frames) works the same; data.num_frames sets the fixed length
(0 = the longest gait in the file, as the official loader: the held-out gaits' lengths take part in that
choice) and data.length_policy how shorter/longer gaits are brought to it ('tile' = official cyclic
padding, 'crop', 'resample'). Synthetic STEP-Gen files (labels in the key suffix) need no labels_path.
The split is grouped where keys name windows of clips (``<clip>_f<first frame>``, what
``stepjax.data.bvh --window`` writes): the windows of one clip stay in one part. E-Gait's own keys name
no windows, so its gaits are split one by one.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import step  # noqa: E402


def get_config():
    cfg = step.get_config()
    cfg.data = common.walkers_data()
    cfg.data.update(dict(source="egait", path="", labels_path="", num_frames=75, length_policy="tile",
                         group_by_subject=True))
    cfg.data.split = (0.7, 0.2, 0.1)
    return cfg
