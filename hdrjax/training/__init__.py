"""Training SingleHDR: stage-wise (teacher forcing, §1.6) and joint fine-tuning (§3.4).

`python -m hdrjax.main --config=configs/<stage>.py` runs `loop.train_and_evaluate`; the parts:

* `loop`: the config check, the optimiser, the train and eval step functions, and the loop
  (restore or initialise, step, log, evaluate, checkpoint, stop on a signal);
* `train_state`: `TrainState` and where its first values come from (`config.init.*`);
* `losses`: the per-stage and joint losses (§3.2, §3.4);
* `periodic_eval`: the fixed held-out evaluation run every `train.eval_every` steps;
* `summaries`: metrics.jsonl, TensorBoard events, preview images, the progress line;
* `preemption`: stop at a step boundary on SIGTERM / Ctrl-C;
* `parallel`: the device mesh, sharding, and the agreement of several processes;
* `launch`: running N cooperating processes on one machine (`python -m hdrjax.launch`).

Only the training entry point (`hdrjax.main`) imports `loop`.  The package has no re-exports:
import from the module that owns a name.
"""
