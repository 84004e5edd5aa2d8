"""tests/fake_gemini.py's CLI, with Nagle's algorithm off on its sockets.

The fake's handler (http.server) writes the response headers and the body in
two send() calls. With Nagle on, a small body waits for the client's ACK of
the headers, which Linux delays by up to 40 ms: every small upstream call
then takes L + ~40 ms, an artefact no real front end has. Google's does not;
waitress sets TCP_NODELAY too. Same arguments as the fake's own CLI:

    python bench/fake_server.py --port 8765 --latency 0.5 --image-kb 1024

(`run.py --stock-fake` runs tests/fake_gemini.py unchanged, to see the
artefact.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fake_gemini

if __name__ == "__main__":
    fake_gemini._Handler.disable_nagle_algorithm = True
    fake_gemini.main()
