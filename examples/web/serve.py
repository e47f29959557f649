"""Serve the edgecnn web example on 127.0.0.1 only (standard library, no dependencies).

    python examples/web/serve.py [--port 8000] [--model resnet18.onnx] [--files DIR] [--no-isolation]

Routes: ``/`` the page (examples/web), ``/js/`` examples/js, ``/ort/`` onnxruntime-web's dist files from
examples/web/node_modules (run ``npm ci`` there first; no CDN), ``/sample.ppm`` a generated sample image,
``/data/`` edgecnn/data (class names), ``/model.onnx`` the ``--model`` file (the page loads it at start),
``/files/NAME`` the files of ``--files DIR``.

By default every response carries the cross-origin-isolation headers (COOP ``same-origin``, COEP
``require-corp``): the page is then ``crossOriginIsolated``, SharedArrayBuffer exists and onnxruntime-web
runs its wasm kernels on several threads. ``--no-isolation`` drops them (one thread).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
JS_DIR = HERE.parent / "js"
ORT_DIST = HERE / "node_modules" / "onnxruntime-web" / "dist"
DATA_DIR = HERE.parent.parent / "edgecnn" / "data"  # imagenet_classes.txt


def sample_ppm(width: int = 160, height: int = 120) -> bytes:
    """A deterministic RGB test card (gradients, a disc, stripes) as binary PPM bytes."""
    pixels = bytearray()
    cx, cy, r2 = width * 0.6, height * 0.45, (min(width, height) * 0.3) ** 2
    for y in range(height):
        for x in range(width):
            if (x - cx) ** 2 + (y - cy) ** 2 < r2:
                rgb = (230, 120 + (x * 3) % 60, 40)
            elif (x // 8 + y // 8) % 2 and y > height * 0.7:
                rgb = (30, 30, 30)
            else:
                rgb = (x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height))
            pixels += bytes(rgb)
    return f"P6\n{width} {height}\n255\n".encode() + bytes(pixels)


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files from a few mounted folders, with COOP/COEP headers and no caching."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".ppm": "image/x-portable-pixmap", ".pgm": "image/x-portable-graymap"}

    def __init__(self, *args, mounts: dict[str, Path], model: Path | None, isolation: bool, **kwargs):
        self.mounts, self.model, self.isolation = mounts, model, isolation
        super().__init__(*args, directory=str(HERE), **kwargs)

    def translate_path(self, path: str) -> str:
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if path == "/model.onnx" and self.model is not None:
            return str(self.model)
        for prefix, folder in self.mounts.items():
            if path.startswith(prefix):
                rel = Path(path[len(prefix):])
                if ".." in rel.parts:
                    return str(folder / "__forbidden__")
                return str(folder / rel)
        return super().translate_path(path)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if urllib.parse.urlsplit(self.path).path == "/sample.ppm":
            body = sample_ppm()
            self.send_response(200)
            self.send_header("Content-Type", "image/x-portable-pixmap")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        if self.isolation:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server signature)
        if os.environ.get("EDGECNN_SERVE_LOG"):
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the edgecnn web example on 127.0.0.1.")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port) [8000]")
    p.add_argument("--model", type=Path, help="an .onnx file the page loads at start (served as /model.onnx)")
    p.add_argument("--files", type=Path, help="a folder served under /files/ (models, images, raw tensors)")
    p.add_argument("--no-isolation", action="store_true", help="omit COOP/COEP (the page then runs one thread)")
    args = p.parse_args(argv)
    if not ORT_DIST.is_dir():
        print(f"error: {ORT_DIST} is missing: run 'npm ci' in {HERE}", file=sys.stderr)
        return 1
    if args.model is not None and not args.model.is_file():
        print(f"error: model file not found: {args.model}", file=sys.stderr)
        return 1
    mounts = {"/js/": JS_DIR, "/ort/": ORT_DIST, "/data/": DATA_DIR}
    if args.files is not None:
        mounts["/files/"] = args.files.resolve()
    handler = functools.partial(Handler, mounts=mounts, model=args.model.resolve() if args.model else None,
                                isolation=not args.no_isolation)
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as e:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
