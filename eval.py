"""Evaluate classifier checkpoints.

    python eval.py --workdir runs/step                       # test split of the run's own data
    python eval.py --workdir runs/s0 --workdir runs/s1 ...    # several seeds/folds: mean +- std
    python eval.py --workdir runs/step --features f.h5 --labels l.h5 --json out.json --png cm.png
    python eval.py --workdir runs/gen --classifier runs/baseline_step   # a generator checkpoint: FID etc.
"""

import os

from absl import app, flags, logging

flags.DEFINE_multi_string("workdir", None, "Training workdir(s); config is read from the checkpoint.")
flags.DEFINE_enum("split", "test", ["train", "val", "test", "all"], "Split of the run's own data.")
flags.DEFINE_string("features", None, "Evaluate on this E-Gait features*.h5 instead of a split.")
flags.DEFINE_string("labels", None, "E-Gait labels*.h5 for --features (omit for labels in key suffixes).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of each workdir.")
flags.DEFINE_string("json", None, "Write the full report as JSON here.")
flags.DEFINE_string("png", None, "Save the confusion matrix (summed over runs) as a PNG here; for generator workdirs "
                    "the per-epoch loss curves (reconstruction, collapse, drift, KL; one file per workdir).")
flags.DEFINE_string("classifier", None, "For generator workdirs: classifier run whose features give FID etc.")
flags.DEFINE_integer("per_class", 250, "For generator workdirs: generated gaits per class.")
flags.DEFINE_alias("per-class", "per_class")  # the spelling of python -m stepjax.generation / gen_eval
flags.DEFINE_enum("classifier_checkpoint", "best", ["best", "latest"],
                  "For generator workdirs: which checkpoint of --classifier (--checkpoint picks the generator's).")
flags.DEFINE_alias("classifier-checkpoint", "classifier_checkpoint")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from stepjax.utils import cli_errors, enable_compilation_cache

    enable_compilation_cache()
    with cli_errors("eval.py"):
        _evaluate()


def _evaluate():
    from stepjax.evaluation import evaluate_workdirs, format_reports, summed_confusion
    from stepjax.training.checkpoint import read_run_config
    from stepjax.utils import check_output_dir, write_json
    from stepjax.viz import check_image_path, plot_confusion

    for path in (FLAGS.json, FLAGS.png):  # before the work, not after it
        check_output_dir(path)
    if FLAGS.png:
        check_image_path(FLAGS.png, "--png")
    if FLAGS.labels and not FLAGS.features:
        raise ValueError("--labels goes with --features (the labels of those gaits); a run's own split has its labels")
    tasks = {read_run_config(w).get("task") for w in FLAGS.workdir}  # every run read before any work
    if "generator" in tasks and len(tasks) > 1:
        raise ValueError(f"--workdir mixes generator and classifier runs ({sorted(map(str, tasks))}); evaluate "
                         "each kind in its own call")
    if tasks == {"generator"}:
        from stepjax.gen_eval import evaluate_generator, format_report

        given = [f"--{name}" for name in ("features", "labels", "split") if FLAGS[name].present]
        if given:  # not silently ignored
            raise ValueError(f"{', '.join(given)} apply to classifier runs; a generator run is evaluated on "
                             "generated gaits against its own data's splits")

        if not FLAGS.classifier:
            raise ValueError("a generator workdir needs --classifier=<classifier workdir> for its metrics")
        reports = [evaluate_generator(w, FLAGS.classifier, FLAGS.per_class, which=FLAGS.checkpoint,
                                      classifier_which=FLAGS.classifier_checkpoint)
                   for w in FLAGS.workdir]
        for i, r in enumerate(reports):
            print(format_report(r))
            if FLAGS.png:  # the push-pull (collapse, drift), reconstruction and KL curves per epoch
                from stepjax.training.progress import read_metrics
                from stepjax.viz import plot_loss_curves

                root, ext = os.path.splitext(FLAGS.png)
                path = FLAGS.png if len(reports) == 1 else f"{root}_{i}{ext or '.png'}"
                plot_loss_curves(read_metrics(r["generator"]), path, title=r["generator"])
                print(f"wrote {path}")
        if FLAGS.json:
            write_json(FLAGS.json, reports)
        return
    given = [name for name in ("classifier", "per_class", "classifier_checkpoint") if FLAGS[name].present]
    if given:  # not silently ignored
        raise ValueError(f"--{given[0]} is for generator workdirs (FID etc.); this is a classifier run")
    out = evaluate_workdirs(FLAGS.workdir, split=FLAGS.split, features=FLAGS.features, labels=FLAGS.labels,
                            which=FLAGS.checkpoint)
    print(format_reports(out))
    if FLAGS.png:
        plot_confusion(summed_confusion(out), FLAGS.png)
    if FLAGS.json:
        write_json(FLAGS.json, out)


if __name__ == "__main__":
    from stepjax.utils import absl_flags_parser

    app.run(main, flags_parser=absl_flags_parser("eval.py"))
