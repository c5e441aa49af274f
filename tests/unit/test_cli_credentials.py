"""Where the CLI finds its token: MESHD_TOKEN, else the kubeconfig's current context (if it is this agent),
else the default state dir; and the default agent's socket only when no address was named."""

from __future__ import annotations

import socket

import yaml

from meshd.cli.credentials import find_credentials, kubeconfig, token_from_config

URL = "http://127.0.0.1:7700"


def test_the_kubeconfig_token_counts_only_for_its_own_server():
    config = kubeconfig(server=URL, token="kc")
    assert token_from_config(config, URL) == "kc"
    assert token_from_config(kubeconfig(server="127.0.0.1:7700", token="kc"), URL) == "kc"
    assert token_from_config(config, "http://127.0.0.1:7701") is None
    assert token_from_config(kubeconfig(server="https://10.0.0.1:6443", token="kc"), URL) is None
    assert token_from_config({**config, "current-context": "other"}, URL) is None


def test_the_order_is_env_then_kubeconfig_then_the_state_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "token").write_text("from-state\n")
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(kubeconfig(server=URL, token="from-kubeconfig")))
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{path}"}
    assert find_credentials(URL, {**env, "MESHD_TOKEN": "from-env"}, explicit=True, state_dir=state).token == "from-env"
    assert find_credentials(URL, env, explicit=True, state_dir=state).token == "from-kubeconfig"
    assert find_credentials(URL, {"KUBECONFIG": str(tmp_path / "missing")}, explicit=True,
                            state_dir=state).token == "from-state"
    assert find_credentials(URL, {"KUBECONFIG": str(path) + ".none"}, explicit=True,
                            state_dir=tmp_path / "none").token is None


def test_the_socket_is_used_only_without_an_explicit_address(tmp_path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "api.sock"))
        assert find_credentials(URL, {}, explicit=False, state_dir=tmp_path).unix_socket == str(tmp_path / "api.sock")
        assert find_credentials(URL, {}, explicit=True, state_dir=tmp_path).unix_socket is None
    assert find_credentials(URL, {}, explicit=False, state_dir=tmp_path / "x").unix_socket is None
