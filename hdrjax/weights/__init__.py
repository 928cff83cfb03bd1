"""Where weights come from: training checkpoints, shipped models, and loading either.

* `checkpoints`: orbax checkpoints of training runs (`Checkpointer`) and standalone variables
  (`save_variables`, `load_inference_variables`);
* `pretrained`: the shipped-model format (manifest.json + sha256-checked .npz shards); the
  model that ships with hdrjax is the folder `default/` beside it;
* `architecture`: the model stored weights belong to, rebuilt from the config stored with them,
  and the check of every array's shape against it;
* `loading`: `--checkpoint` (a training workdir or step folder, a shipped-model folder,
  `default`) → `LoadedModel`, what predict, evaluate and the experiments load through.

Dependencies run one way: `loading` → `pretrained` → `architecture`, `checkpoints`.  The
package has no re-exports: import from the module that owns a name.
"""
