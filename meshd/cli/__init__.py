"""The `meshd` command line: a kubectl-like client of the agent's HTTP API (and `meshd agent`/`up`)."""
