"""Converts videos (a folder per class, or a list file of JPEG frame folders) to TFRecord shards.

    python training/prepare.py SRC OUT [--splits train val] [--short-side 256] [--shard-mb 128]

Each video is decoded once with OpenCV, its short side resized, every frame JPEG-encoded,
and the videos written in a fixed shuffled order to shards of at most --shard-mb MB,
with OUT/manifest.json (counts per class, skipped files and why) and OUT/labels.txt.
Re-running the same command resumes an interrupted run: finished shards are kept.
A list file is one split: name it with --splits (default train), e.g.
    python training/prepare.py train_list.txt OUT --splits train
    python training/prepare.py val_list.txt OUT --splits val --labels-file labels.txt
"""

import argparse
import os
import sys

from tsm_keras.data.base import DataError
from tsm_keras.data.sources import available_splits, open_source
from tsm_keras.data.tfrecord import write_tfrecords


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of videos (one subfolder per class) or a list file")
    p.add_argument("out", help="output folder for the shards, manifest.json and labels.txt")
    p.add_argument("--splits", nargs="+", help="splits to write (default: those SRC has)")
    p.add_argument("--short-side", type=int, default=256, help="resize the short side to this (0: keep)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    p.add_argument("--shard-mb", type=float, default=128, help="upper bound of a shard's size in MB")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order of videos in the shards")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="class folders without split folders or files: share held out as val",
    )
    p.add_argument("--frame-template", default="img_{:05d}.jpg", help="list files: frame file names")
    p.add_argument("--start-index", type=int, default=1, help="list files: number of the first frame")
    p.add_argument("--frames-root", default=None, help="list files: folder the frame paths start from")
    p.add_argument("--labels-file", default=None, help="list files: class names, one per line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        splits = args.splits or available_splits(args.src)
        sources = {
            split: open_source(
                args.src,
                split,
                val_fraction=args.val_fraction,
                short_side=None,
                frame_template=args.frame_template,
                start_index=args.start_index,
                frames_root=args.frames_root,
                labels_file=args.labels_file,
            )
            for split in splits
        }
        manifest = write_tfrecords(
            sources,
            args.out,
            short_side=args.short_side or None,
            quality=args.quality,
            shard_mb=args.shard_mb,
            workers=args.workers,
            seed=args.seed,
            progress=not args.quiet,
        )
    except DataError as e:
        print(f"prepare.py: {e}", file=sys.stderr)
        return 2
    for split in splits:
        info = manifest["splits"][split]
        print(f"{split}: {info['num_clips']} clips in {len(info['shards'])} shards, {len(info['skipped'])} skipped")
        for item in info["skipped"][:20]:
            print(f"  skipped {item['file']}: {item['reason']}")
    print(f"wrote {os.path.join(args.out, 'manifest.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
