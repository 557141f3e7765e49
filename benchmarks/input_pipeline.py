"""Input pipeline throughput: training clips per second at T x S x S for each source.

    PYTHONPATH=. python benchmarks/input_pipeline.py [--videos 48] [--frames 100]

Makes --videos synthetic videos (MPEG-4 Part 2 .mp4, 340 x 256, moving texture), the
same videos as folders of JPEG frames with a list file, and as TFRecord shards
(prepare.py's writer); then times make_train_dataset on each against a bare loop that
decodes the same frames with OpenCV in Python (one thread). Also compares ways to get
sampled frames out of a video file. Prints markdown tables; not a timed test.

On a shared machine wall-clock rates depend on the other load; CPU time per clip
(all threads of this process, from time.process_time) does much less, so both are
printed: frames/s per core = T * 1000 / (CPU ms per clip).

Ends by writing two ledger entries (benchmarks/ledger.py): results/data-pipeline-throughput.json
and results/data-frame-decoding.json.
"""

import argparse
import gc
import os
import tempfile
import time

import cv2
import numpy as np
from _timing import print_table
from ledger import command, write_entry

from tsm_keras.data import Sampling, make_train_dataset, open_source, write_tfrecords
from tsm_keras.data.sources import FrameListSource


def make_videos(root, count, num_frames, height=256, width=340):
    rng = np.random.default_rng(0)
    texture = cv2.resize(
        rng.integers(0, 255, (height // 8, width // 4, 3), dtype=np.uint8),
        (width * 2, height),
        interpolation=cv2.INTER_CUBIC,
    )
    paths = []
    for k in range(count):
        path = os.path.join(root, "videos", f"class{k % 4}", f"v{k:03d}.mp4")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
        for i in range(num_frames):
            frame = texture[:, (3 * i + 7 * k) % width :][:, :width].copy()
            cv2.putText(frame, f"{k}:{i}", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths


def make_frame_folders(root, paths):
    lines = []
    for k, path in enumerate(paths):
        folder = os.path.join(root, "frames", f"v{k:03d}")
        os.makedirs(folder, exist_ok=True)
        cap = cv2.VideoCapture(path)
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            i += 1
            cv2.imwrite(os.path.join(folder, f"img_{i:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append(f"frames/v{k:03d} {i} {k % 4}")
    list_path = os.path.join(root, "list.txt")
    with open(list_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return list_path


def bare_loop(paths, num_segments, size, seed=0):
    """What a first script does: cap.read() up to the last sampled frame, crop, resize."""
    rng = np.random.default_rng(seed)
    sampling = Sampling("tsn", num_segments, training=True)
    for path in paths:
        cap = cv2.VideoCapture(path)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(sampling.indices(n, rng.random(sampling.noise_size))[0].tolist())
        clip = []
        for i in range(max(wanted) + 1):
            ok, frame = cap.read()
            if i in wanted:
                h, w = frame.shape[:2]
                s = min(h, w)
                y, x = (h - s) // 2, (w - s) // 2
                clip.append(cv2.resize(cv2.cvtColor(frame[y : y + s, x : x + s], cv2.COLOR_BGR2RGB), (size, size)))
        cap.release()
        np.stack(clip)


def timed(runners, min_seconds, rounds):
    """Best of `rounds` round-robin timings of each runner (so a burst of load elsewhere
    hits every row alike): {name: (clips per wall second, CPU ms per clip)}. CPU time
    counts all threads of this process, so a pipeline's iterator is deleted after its
    turn: its prefetching threads must not bill the next row."""
    best = {}
    for _ in range(rounds):
        for name, measure in runners.items():
            clips, wall, cpu = measure(min_seconds)
            old = best.get(name, (0.0, float("inf")))
            best[name] = (max(old[0], clips / wall), min(old[1], cpu / clips * 1000))
    return best


def clock(step, min_seconds):
    """Runs step() (which returns a clip count) for at least min_seconds: (clips, wall, cpu)."""
    wall, cpu, done = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - wall < min_seconds:
        done += step()
    return done, time.perf_counter() - wall, time.process_time() - cpu


def pipeline_runner(ds, warmup_batches=3):
    """Times a long-lived iterator over repeated epochs (the steady state of training),
    after a few batches of start-up (threads, buffers, AUTOTUNE)."""
    repeated = ds.repeat()

    def measure(min_seconds):
        iterator = iter(repeated)
        for _ in range(warmup_batches):
            next(iterator)
        result = clock(lambda: int(next(iterator)[0].shape[0]), min_seconds)
        iterator = None  # drop the iterator's threads before the next row
        gc.collect()
        time.sleep(0.5)  # let its threads wind down
        return result

    return measure


def decode_strategies(paths, num_segments):
    """CPU ms per clip to get TSN-sampled (validation) frames out of a file, three ways."""
    sampling = Sampling("tsn", num_segments)

    def sequential(path):
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        wanted = sampling.indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))[0].tolist()
        for i in range(max(wanted) + 1):
            cap.grab()
            if i in wanted:
                cap.retrieve()

    def read_all(path):
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        wanted = sampling.indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))[0].tolist()
        for _ in range(max(wanted) + 1):
            cap.read()

    def seek(path):
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        for i in sampling.indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))[0].tolist():
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            cap.read()

    rows = []
    for name, fn in (
        ("grab all, retrieve sampled (used)", sequential),
        ("read (decode + convert) all", read_all),
        ("seek to each sampled frame", seek),
    ):
        fn(paths[0])
        start = time.process_time()
        for path in paths:
            fn(path)
        rows.append((name, (time.process_time() - start) / len(paths) * 1000))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--videos", type=int, default=48)
    p.add_argument("--frames", type=int, default=100, help="frames per video")
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per row and round")
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds; the best is kept")
    p.add_argument("--workdir", default=None)
    args = p.parse_args()
    cores = os.cpu_count()
    root = args.workdir or tempfile.mkdtemp(prefix="tsm_bench_")

    t = time.perf_counter()
    paths = make_videos(root, args.videos, args.frames)
    list_path = make_frame_folders(root, paths)
    print(f"made {args.videos} videos x {args.frames} frames in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    write_tfrecords(
        {"train": open_source(os.path.join(root, "videos"), "all")}, os.path.join(root, "tfrecord"), progress=False
    )
    prep = time.perf_counter() - t
    print(f"prepare (TFRecord, short side 256): {prep:.1f} s, {args.videos / prep:.1f} videos/s on {cores} cores")

    options = dict(num_segments=args.segments, input_size=args.size, batch_size=args.batch)
    sources = {
        "video folder (OpenCV in tf.data)": open_source(os.path.join(root, "videos"), "all"),
        "JPEG frame folders + list file": FrameListSource(list_path),
        "TFRecord shards (prepare.py)": open_source(os.path.join(root, "tfrecord")),
    }
    bare = lambda: bare_loop(paths, args.segments, args.size) or len(paths)  # noqa: E731
    bare()  # warm-up: file cache
    runners = {"bare loop: OpenCV in Python, 1 thread": lambda seconds: clock(bare, seconds)}
    for name, src in sources.items():
        runners[name] = pipeline_runner(make_train_dataset(src, **options))
    rows = list(timed(runners, args.seconds, args.rounds).items())
    base_rate, base_cpu = rows[0][1]
    shape = f"{args.segments} x {args.size} x {args.size}"
    load = os.getloadavg()[0]
    caption = (
        f"training clips of {shape}, batch {args.batch}, {args.videos} videos of "
        f"{args.frames} frames (340 x 256 mp4v), {cores} cores, load average {load:.1f}, "
        f"best of {args.rounds} rounds"
    )
    print(f"\n{caption}\n")
    columns = ["source", "clips/s (wall)", "CPU ms per clip", "frames/s per core", "per core vs bare loop"]
    columns.append("wall vs bare loop")
    table = [
        [name, round(rate, 1), round(cpu_ms, 1), round(args.segments * 1000 / cpu_ms)]
        + [round(base_cpu / cpu_ms, 1), round(rate / base_rate, 1)]
        for name, (rate, cpu_ms) in rows
    ]
    print_table(columns, table)
    write_entry(
        "data-pipeline-throughput",
        "data",
        "Training clips per second of the tf.data pipeline from each source, against a bare OpenCV loop",
        command(),
        columns,
        table,
        notes=caption + ".",
        conditions=f"load average {load:.1f}",
    )
    decoding = f"getting {args.segments} TSN frames from one video"
    print(f"\n{decoding}\n")
    decoded = [[name, round(ms, 1)] for name, ms in decode_strategies(paths[:16], args.segments)]
    print_table(["method", "CPU ms per clip"], decoded)
    write_entry(
        "data-frame-decoding",
        "data",
        "Ways to get a clip's sampled frames out of a video file",
        command(),
        ["method", "CPU ms per clip"],
        decoded,
        notes=f"CPU time of {decoding}, over {min(16, len(paths))} videos of {args.frames} frames.",
    )


if __name__ == "__main__":
    main()
