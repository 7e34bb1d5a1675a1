#!/usr/bin/env python3
"""Serves a folder on 127.0.0.1 like `python3 -m http.server`, cross-origin isolated: with the
Cross-Origin-Opener-Policy and -Embedder-Policy headers a page needs for SharedArrayBuffer, so the
site's CPU path runs the threaded engine (every file it loads is same-origin).
  python3 scripts/serve.py PORT DIR"""
import functools
import http.server
import sys


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, '.wasm': 'application/wasm', '.mjs': 'text/javascript'}

    def end_headers(self):
        self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
        self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
        super().end_headers()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    port, directory = int(sys.argv[1]), sys.argv[2]
    handler = functools.partial(IsolatedHandler, directory=directory)
    with http.server.ThreadingHTTPServer(('127.0.0.1', port), handler) as server:
        server.serve_forever()


if __name__ == '__main__':
    main()
