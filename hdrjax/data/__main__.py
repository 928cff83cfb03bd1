"""Command line: prepare a file dataset once, or measure the training pipeline's throughput.

  python -m hdrjax.data prepare --name hdr_folder --manual_dir ../shared/data/train_hdr \\
      --data_dir ~/tensorflow_datasets --set panorama.enabled=True
  python -m hdrjax.data benchmark --name procedural --batch 8 --batches 20

`--set FIELD=VALUE` (repeatable) sets any field of hdrjax.data.default_config(), dotted for
nested ones (split.test_fraction=0.2); values are Python literals, or strings otherwise.
"""
from __future__ import annotations

import argparse
import ast
import sys
import time

from typing import TYPE_CHECKING

from hdrjax import cli
from hdrjax.data.config import DataError, default_config
from hdrjax.errors import HdrjaxError

if TYPE_CHECKING:
    import ml_collections


def build_config(args) -> "ml_collections.ConfigDict":
    """The data config from the command-line arguments."""
    c = default_config()
    for field in ("name", "manual_dir", "data_dir", "backend", "patch_size"):
        value = getattr(args, field, None)
        if value is not None:
            c[field] = value
    for item in args.set or ():
        key, sep, raw = item.partition("=")
        if not sep:
            raise DataError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        node, *path = key.split(".")
        target = c
        for part in [node, *path][:-1]:
            if part not in target:
                raise DataError(f"--set {item!r}: no field {part!r} in the data config")
            target = target[part]
        last = [node, *path][-1]
        if last not in target:
            raise DataError(f"--set {item!r}: no field {last!r} in the data config")
        target[last] = value
    return c


def benchmark(config, *, batch: int, batches: int, seed: int = 0) -> float:
    """Patches per second of the training iterator after one warm-up batch."""
    from hdrjax.data.pipeline import make_train_iterator

    it = make_train_iterator(config, global_batch_size=batch, seed=seed)
    next(it)  # start-up: workers, first reads
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batch * batches / (time.perf_counter() - start)


def main(argv=None) -> int:
    """Entry point of `python -m hdrjax.data`."""
    parser = argparse.ArgumentParser(prog="python -m hdrjax.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "benchmark"))
    parser.add_argument("--name")
    parser.add_argument("--manual_dir")
    parser.add_argument("--data_dir")
    parser.add_argument("--backend")
    parser.add_argument("--patch_size", type=int)
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    cli.configure_logging()
    try:
        config = build_config(args)
        if args.command == "prepare":
            from hdrjax import data
            builder = data.prepare(config)
            splits = ", ".join(f"{k}: {v.num_examples}" for k, v in builder.info.splits.items())
            print(f"{builder.data_path} ({splits})")
        else:
            rate = benchmark(config, batch=args.batch, batches=args.batches)
            print(f"{config.name}: {rate:.1f} patches/s ({config.patch_size}x{config.patch_size}, "
                  f"{config.num_workers} workers, {config.num_threads} threads)")
    except HdrjaxError as e:  # user mistakes: one line naming the file/field
        return cli.fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
