"""Streaming demo: classify a video or a camera frame by frame with a streaming model.

    python tflite/stream.py MODEL.tflite --video FILE [--video FILE2 ...] [--out annotated.mp4]
    python tflite/stream.py MODEL.tflite --camera 0 [--show]
    python tflite/stream.py RUN_DIR --runtime onnxruntime|openvino --video FILE

MODEL is a stream_*.tflite or stream_state_*.tflite written by tflite/convert.py, or with
--runtime onnxruntime or openvino a stream_state_float32.onnx or .xml (convert.py --formats
onnx openvino); given a run directory, the runtime's streaming model in RUN_DIR/tflite/ is
used (stream_float32.tflite for LiteRT, stream_state_float32.onnx / .xml otherwise). The class
names come from labels.txt beside it (or --labels), and the crop of each frame from the run's
view in report.json beside it (the centre square the model was evaluated on). The buffers are reset at the start of
each video, every --reset-every frames, on the key 'r' in the --show window, and on
SIGUSR1 (kill -USR1 PID) for a headless camera. The top class of the logits averaged over
the last --window model steps is printed and drawn on the frame. --stride N runs the model
on every N-th frame: the shift compares a frame with the one the model saw before, so the
spacing should match training (TSN sampling of T frames from F: about F / T).
--accelerator gpu runs the model on LiteRT's GPU accelerator (a stream_state_*.tflite: the
resource variables of stream_*.tflite are for the CPU).
"""

import argparse
import signal
import sys
from pathlib import Path

from tsm_keras.cli import add_runtime_arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="streaming model (.tflite, .onnx, .xml) or a run directory")
    add_runtime_arguments(parser, "a stream_state_*.tflite, the run directory's by default")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", action="append", help="video file (repeat for several)")
    source.add_argument("--camera", type=int, help="camera index for cv2.VideoCapture")
    parser.add_argument("--out", help="write the annotated frames to this video (.mp4)")
    parser.add_argument("--labels", help="class names, one a line (default: labels.txt beside the model)")
    parser.add_argument("--window", type=int, default=12, help="frames averaged for the prediction (default 12)")
    parser.add_argument("--reset-every", type=int, default=None, help="also reset the buffers every N frames")
    parser.add_argument(
        "--stride",
        type=int,
        default=1,
        help="run the model on every N-th frame (match the frame spacing of training; default 1)",
    )
    parser.add_argument("--threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--show", action="store_true", help="show a window (needs an OpenCV build with GUI)")
    parser.add_argument("--quiet", action="store_true", help="print only when the top class changes")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import cv2

    from tsm_keras.data.labels import read_labels
    from tsm_keras.export.gpu import GpuError
    from tsm_keras.export.kinds import STREAM_STATE
    from tsm_keras.export.portable import MissingRuntimeError
    from tsm_keras.export.runtime import ModelKindError
    from tsm_keras.export.sessions import find_model, stream_runner
    from tsm_keras.streaming.app import StreamingClassifier, frames_of, model_view, open_capture, run_video

    try:
        kind = STREAM_STATE if args.accelerator == "gpu" else None  # the GPU's streaming kind
        model = find_model(args.model, args.runtime, kind=kind)
        runner = stream_runner(model, args.runtime, threads=args.threads, accelerator=args.accelerator)
        labels = Path(args.labels) if args.labels else Path(model).resolve().parent / "labels.txt"
        if not labels.is_file():
            raise ValueError(f"{labels}: no class names (pass --labels)")
        view, source = model_view(model, runner.input_size)
        classifier = StreamingClassifier(runner, read_labels(labels), args.window, view)
        print(f"# view: short side to {view.resize_short_side} px, centre {view.center_crop} px ({source})")
        sources = args.video if args.video else [args.camera]
        captures = [open_capture(source) for source in sources]
    except (ModelKindError, FileNotFoundError, ValueError, MissingRuntimeError, GpuError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"# {model} on {args.runtime}")

    requested = {"reset": False}
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda *_: requested.update(reset=True))

    def should_reset():
        if args.show and (cv2.waitKey(1) & 0xFF) == ord("r"):
            requested["reset"] = True
        reset, requested["reset"] = requested["reset"], False
        if reset:
            print("reset", flush=True)
        return reset

    writer, last = None, {"label": None}

    def on_prediction(prediction, annotated):
        nonlocal writer
        if args.out and writer is None:
            height, width = annotated.shape[:2]
            fps = captures[0].get(cv2.CAP_PROP_FPS) or 25.0
            writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if writer is not None:
            writer.write(annotated)
        if not args.quiet or prediction.label != last["label"]:
            print(f"{prediction.frame:6d} {prediction.label} {prediction.score:.3f}", flush=True)
        last["label"] = prediction.label
        if args.show:
            cv2.imshow("tsm-keras", annotated)

    try:
        for source, capture in zip(sources, captures):
            print(f"# {source}", flush=True)
            last["label"] = None
            run_video(
                classifier,
                frames_of(capture),
                reset_every=args.reset_every,
                should_reset=should_reset,
                on_prediction=on_prediction,
                stride=args.stride,
            )
            capture.release()
    except KeyboardInterrupt:
        pass
    finally:
        if writer is not None:
            writer.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
