"""meshd.api.protoschema: the protobuf bodies kubectl 1.37's generators send, decoded to the JSON the API takes.
The bodies are what `kubectl create deployment|job|ingress` sent to a real agent."""

from __future__ import annotations

import pytest

from meshd.api.protobuf import MAGIC, ProtobufError, decode

DEPLOYMENT = bytes.fromhex(  # kubectl create deployment web2 --image=meshd/python:3.11 --replicas=2 --port=8000
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412eb010a210a047765623212001a0022002a00320038004200"  # -- python3 -m http.server 8000
    "5a0b0a0361707012047765623212b7010802120d0a0b0a036170701204776562321a9b010a1d0a0012001a0022002a0032003800"
    "42005a0b0a03617070120477656232127a125c0a06707974686f6e12116d657368642f707974686f6e3a332e31311a0770797468"
    "6f6e331a022d6d1a0b687474702e7365727665721a04383030302a00320b0a00100018c03e22002a0042006a0072008001008801"
    "00900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c08001000180020"
    "00280038001a002200")
JOB = bytes.fromhex(  # kubectl create job hello --image=meshd/busybox:latest -- echo "Hello World"
    "6b3873000a0f0a0862617463682f763112034a6f6212a0010a150a0568656c6c6f12001a0022002a00320038004200127d327b0a"
    "100a0012001a0022002a00320038004200126712440a0568656c6c6f12146d657368642f62757379626f783a6c61746573741a04"
    "6563686f1a0b48656c6c6f20576f726c642a0042006a007200800100880100900100a201001a054e65766572320042004a005200"
    "5800600068008201008a01009a0100c201001a082000280030003a001a002200")
INGRESS = bytes.fromhex(  # kubectl create ingress ingdefault --class=meshd --default-backend=defaultsvc:http
    "6b3873000a1f0a146e6574776f726b696e672e6b38732e696f2f76311207496e67726573731283010a1a0a0a696e676465666175"  # --rule=foo.com/*=svc:8080,tls=secret1
    "6c7412001a0022002a0032003800420012610a1822160a0a64656661756c7473766312080a0468747470100012120a07666f6f2e"
    "636f6d1207736563726574311a2a0a07666f6f2e636f6d121f0a1d0a1b0a012f120e220c0a0373766312050a0010903f1a065072"
    "6566697822056d657368641a020a001a002200")


def test_kubectls_deployment_decodes_to_what_its_dry_run_prints():
    assert decode(DEPLOYMENT) == {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web2", "labels": {"app": "web2"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web2"}}, "template": {
            "metadata": {"labels": {"app": "web2"}},
            "spec": {"containers": [{"name": "python", "image": "meshd/python:3.11",
                                     "command": ["python3", "-m", "http.server", "8000"],
                                     "ports": [{"containerPort": 8000}]}]}}}}


def test_kubectls_job_decodes_with_its_spec():
    assert decode(JOB)["spec"] == {"template": {"spec": {
        "containers": [{"name": "hello", "image": "meshd/busybox:latest", "command": ["echo", "Hello World"]}],
        "restartPolicy": "Never"}}}


def test_kubectls_ingress_decodes_inline_rule_values_and_named_ports():
    assert decode(INGRESS)["spec"] == {
        "defaultBackend": {"service": {"name": "defaultsvc", "port": {"name": "http"}}},
        "tls": [{"hosts": ["foo.com"], "secretName": "secret1"}],
        "rules": [{"host": "foo.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "svc", "port": {"number": 8080}}}}]}}],
        "ingressClassName": "meshd"}


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_a_set_field_meshd_does_not_read_is_refused_by_path_an_empty_one_is_not():
    def pod(container: bytes) -> bytes:
        type_meta = _field(1, b"v1") + _field(2, b"Pod")
        raw = _field(1, _field(1, b"p")) + _field(2, _field(2, container))
        return MAGIC + _field(1, type_meta) + _field(2, raw)

    name = _field(1, b"c") + _field(2, b"img")
    assert decode(pod(name + _field(15, b"")))["spec"] == {"containers": [{"name": "c", "image": "img"}]}
    with pytest.raises(ProtobufError, match=r"spec.containers \(field 15 of Container\)"):
        decode(pod(name + _field(15, bytes([0x40, 1]))))  # securityContext.privileged: true
