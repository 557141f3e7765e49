"""Serve the web demo (web/) with a run's streaming models: classify a camera in a browser.

    python tflite/serve.py [RUN_DIR] [--host 127.0.0.1] [--port 8000] [--cert FILE --key FILE]

RUN_DIR defaults to the newest run under runs/; its tflite/ folder (written by
tflite/convert.py) gives the models and labels.txt. The page runs
stream_state_<precision>.tflite in LiteRT.js (WebAssembly), served from web/node_modules
(`npm ci` in web/ installs it): nothing is fetched from elsewhere. /model/models.json
tells the page each model's kind, precision and signatures (shapes, dtypes, quantization),
as ai_edge_litert reads them. A browser gives the
camera only to https pages and to http://localhost: on a phone on the same network serve
with --host 0.0.0.0 and --cert/--key, or forward the port (docs/web.md).
"""

import argparse
import functools
import http.server
import json
import ssl
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

WEB = Path(__file__).resolve().parents[2] / "web"  # the checkout's web/ (not installed with the package)
LITERT = Path("node_modules", "@litertjs", "core", "wasm")
MODEL_PREFIX = "/model/"  # RUN/tflite/: the .tflite files, labels.txt and models.json


class ServeError(ValueError):
    """The run or web/ is not ready to serve (a one-line message saying what to run)."""


def model_files(tflite_dir):
    """The .tflite files of a run's tflite/ folder, sorted by name."""
    return sorted(p.name for p in Path(tflite_dir).glob("*.tflite"))


def describe_model(path):
    """models.json's entry of one .tflite: name, kind, precision (from the name convert.py
    gives, null otherwise) and signatures as ai_edge_litert reads them; a file that is not a
    tsm_keras video model gets `kind` null and an `error` naming it."""
    from tsm_keras.export.kinds import PRECISIONS, file_name
    from tsm_keras.export.runtime import ModelKindError, kind_of, signatures

    path = Path(path)
    try:
        found = signatures(str(path))
    except ValueError as error:
        return {"name": path.name, "kind": None, "error": f"{path.name}: LiteRT cannot read it ({error})"}
    try:
        kind = kind_of(found, path.name)
    except ModelKindError as error:
        return {"name": path.name, "kind": None, "error": str(error)}
    precision = next((p for p in PRECISIONS if file_name(kind, p) == path.name), None)
    return {"name": path.name, "kind": kind, "precision": precision, "signatures": found}


class ModelList:
    """models.json of a run: every .tflite described, each again only when it changed (a
    re-converted model is picked up on reload), and the run's view from report.json
    ("preprocessing": how each frame is cropped; null for a folder without a report)."""

    def __init__(self, run_name, tflite_dir):
        self.run_name, self.tflite_dir = run_name, Path(tflite_dir)
        self.lock = threading.Lock()
        self.seen = {}  # name -> ((size, mtime), entry)

    def json(self):
        with self.lock:
            models = []
            for name in model_files(self.tflite_dir):
                stat = (self.tflite_dir / name).stat()
                key = (stat.st_size, stat.st_mtime_ns)
                if self.seen.get(name, (None,))[0] != key:
                    self.seen[name] = (key, describe_model(self.tflite_dir / name))
                models.append(self.seen[name][1])
            report = self.tflite_dir / "report.json"
            view = json.loads(report.read_text()).get("preprocessing") if report.is_file() else None
            return {"run": self.run_name, "models": models, "preprocessing": view}


def check(run_dir, web_dir=WEB):
    """The run's tflite/ folder, or ServeError naming what is missing and how to make it."""
    run_dir, web_dir = Path(run_dir), Path(web_dir)
    tflite_dir = run_dir / "tflite"
    if not run_dir.is_dir():
        raise ServeError(f"{run_dir}: no such run directory")
    if not any(name.startswith("stream_state_") for name in model_files(tflite_dir)):
        raise ServeError(
            f"{tflite_dir}: no stream_state_*.tflite to serve: run python tflite/convert.py {run_dir} --int8 "
            "(a causal run: tsm-online or tam-online)"
        )
    if not (tflite_dir / "labels.txt").is_file():
        raise ServeError(f"{tflite_dir / 'labels.txt'}: missing (tflite/convert.py writes it beside the models)")
    if not (web_dir / LITERT).is_dir():
        raise ServeError(f"{web_dir / LITERT}: missing: run `npm ci` in {web_dir} (the page serves LiteRT.js itself)")
    return tflite_dir


class Handler(http.server.SimpleHTTPRequestHandler):
    """web/ at /, and at /model/ only the run's .tflite files, labels.txt and models.json."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}
    extensions_map[".js"] = "text/javascript"

    def __init__(self, *args, models, quiet=True, **kwargs):
        self.models, self.tflite_dir, self.quiet = models, models.tflite_dir, quiet
        super().__init__(*args, **kwargs)

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        if path == MODEL_PREFIX + "models.json":
            body = json.dumps(self.models.json()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path.startswith(MODEL_PREFIX):
            name = path[len(MODEL_PREFIX) :]
            if "/" in name or not (name == "labels.txt" or name.endswith(".tflite")):
                self.send_error(404, "only the run's .tflite files and labels.txt are served")
                return
        super().do_GET()

    def translate_path(self, path):
        path = unquote(urlsplit(path).path)
        if path.startswith(MODEL_PREFIX):
            return str(self.tflite_dir / path[len(MODEL_PREFIX) :])
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")  # a re-converted model is picked up on reload
        super().end_headers()

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def make_server(run_dir, host="127.0.0.1", port=8000, web_dir=WEB, cert=None, key=None, quiet=True):
    """A ThreadingHTTPServer for the page and the run's models (not yet serving); https with
    `cert` and `key` (PEM files). Port 0 picks a free port: see `server.server_address`."""
    models = ModelList(Path(run_dir).resolve().name, check(run_dir, web_dir))
    models.json()  # read every model now: the page's first request does not wait for it
    handler = functools.partial(Handler, directory=str(web_dir), models=models, quiet=quiet)
    server = http.server.ThreadingHTTPServer((host, port), handler)
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def address(server, https=False):
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"{'https' if https else 'http'}://{shown}:{port}/"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="run directory with tflite/ (default: newest under runs/)")
    parser.add_argument("--runs", default="runs", help="where to look for the newest run (default: runs)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--cert", help="TLS certificate (PEM): serve https, which a phone's camera needs")
    parser.add_argument("--key", help="TLS private key (PEM) for --cert")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if bool(args.cert) != bool(args.key):
        print("error: --cert and --key go together", file=sys.stderr)
        return 2
    try:
        if args.run_dir:
            run_dir = Path(args.run_dir)
        else:
            from tsm_keras.run_dir import newest_run

            run_dir = newest_run(args.runs)
        server = make_server(run_dir, args.host, args.port, cert=args.cert, key=args.key, quiet=not args.verbose)
    except (ValueError, OSError, ssl.SSLError) as error:  # RunError and ServeError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    url = address(server, https=bool(args.cert))
    print(f"serving {run_dir} at {url}  (Ctrl-C stops)", flush=True)
    if args.host in ("0.0.0.0", "::", ""):
        print(
            f"on a phone on the same network: {url.replace('127.0.0.1', 'THIS-MACHINES-ADDRESS')} "
            "(the camera needs https: --cert/--key, see docs/web.md)",
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
