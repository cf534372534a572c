"""Train a stepjax model from a config file.

    python train.py --config configs/step.py --workdir runs/step [--config.train.epochs=5 ...]

Re-running the same command on an existing workdir resumes from its latest checkpoint.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and results.json.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.mark_flags_as_required(["workdir"])
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from stepjax.utils import cli_errors, enable_compilation_cache

    enable_compilation_cache()
    from stepjax.training.run import train_from_config

    path = config_flags.get_config_filename(FLAGS["config"])  # may end in ":<get_config argument>"
    if not (os.path.isfile(path) or os.path.isfile(path.split(":", 1)[0])):
        path = path.split(":", 1)[0]
        here = os.path.dirname(os.path.abspath(__file__))
        names = sorted(f for f in os.listdir(os.path.join(here, "configs")) if f.endswith(".py") and f != "common.py")
        print(f"train.py: error: --config {path}: no such file (configs/ holds {', '.join(names)})", file=sys.stderr)
        sys.exit(2)
    with cli_errors("train.py"):
        train_from_config(FLAGS.config, FLAGS.workdir, progress=FLAGS.progress)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    from stepjax.utils import absl_flags_parser

    try:
        app.run(main, flags_parser=absl_flags_parser("train.py"))
    except (AttributeError, KeyError) as err:
        if FLAGS.is_parsed() or os.environ.get("STEPJAX_TRACEBACK"):
            raise  # not a flag mistake
        # a --config.<key>=... override naming no key of the config (ml_collections suggests the right one)
        text = str(err).encode().decode("unicode_escape").replace("'", "").replace("\n", ": ")
        print(f"train.py: error: a --config.* override names no key of the config: {text}", file=sys.stderr)
        sys.exit(2)
