"""meshd's data plane: an HTTP/1.1 load-balancing proxy fed by the agent's endpoint stream."""


def _warn_stale_native() -> None:
    """A module compiled by `MESHD_MYPYC=1 pip install -e .` shadows its .py: say so when the .py is newer."""
    import os
    import warnings

    here = os.path.dirname(os.path.abspath(__file__))
    for name in os.listdir(here):
        if name.endswith(".so"):
            py = os.path.join(here, name.split(".", 1)[0] + ".py")
            if os.path.exists(py) and os.path.getmtime(py) > os.path.getmtime(os.path.join(here, name)):
                warnings.warn(
                    f"sidecar/{name} is older than its .py and is what gets imported: rebuild it "
                    "(MESHD_MYPYC=1 pip install -e .) or remove it (pip install -e .)",
                    RuntimeWarning,
                    stacklevel=2,
                )


_warn_stale_native()
