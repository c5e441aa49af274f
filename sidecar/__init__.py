"""meshd's data plane: an HTTP/1.1 load-balancing proxy fed by the agent's endpoint stream."""

import os as _os

from . import compiled as _compiled

# Before any other sidecar module: the compiled hot path only if it was built from these very sources.
_compiled.choose(_os.path.dirname(_os.path.abspath(__file__)))
