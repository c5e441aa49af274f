"""Bootstrap tokens (kubeadm's form and Secret), the join request's checks, discovery adverts and the joining
node's reading of answers: table tests of the pure decisions."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from meshd.api.auth import decide
from meshd.api.join import RateLimiter, token_json, validate_request
from meshd.cluster import tokens
from meshd.cluster.discovery import Peer, advertised_addresses, instance_name, peer_from_properties
from meshd.cluster.joinca import CsrError, StateDirIssuer, load_csr, make_key_and_csr
from meshd.cluster.joining import JoinError, JoinRefused, parse_answer, server_url

NOW = 1_800_000_000.0
GOOD = tokens.BootstrapToken("abcdef", "0123456789abcdef")
STORED = {
    "abcdef": tokens.StoredToken("abcdef", "0123456789abcdef", NOW + 60),
    "old123": tokens.StoredToken("old123", "0123456789abcdef", NOW - 1),
    "never0": tokens.StoredToken("never0", "0123456789abcdef", None),
    "signin": tokens.StoredToken("signin", "0123456789abcdef", None, authentication=False),
}


def test_generated_tokens_have_kubeadms_form_and_differ() -> None:
    made = {str(tokens.generate()) for _ in range(50)}
    assert len(made) == 50
    assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t) for t in made)
    assert tokens.parse(str(GOOD)) == GOOD
    assert "0123456789abcdef" not in repr(GOOD) and "0123456789abcdef" not in repr(STORED["abcdef"])


@pytest.mark.parametrize("text", ["", "abcdef", "abcdef.", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef",
                                  "abcdef.0123456789abcde", "abcdef.0123456789abcdefg", "abcdef:0123456789abcdef",
                                  "abc-ef.0123456789abcdef", "abcdef.0123456789abcdef\nx"])
def test_malformed_tokens_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(ValueError, match="malformed bootstrap token") as caught:
        tokens.parse(text)
    assert text[7:] not in str(caught.value) or not text[7:]


@pytest.mark.parametrize(("given", "cause", "code", "says"), [
    ("abcdef.0123456789abcdef", None, 0, ""),
    ("never0.0123456789abcdef", None, 0, ""),
    ("nope!!.0123456789abcdef", "Malformed", 400, "malformed"),
    ("zzzzzz.0123456789abcdef", "UnknownToken", 401, '"zzzzzz" is unknown to this cluster'),
    ("abcdef.0123456789abcdee", "WrongSecret", 401, "wrong secret"),
    ("abcdef.aaaaaaaaaaaaaaaa", "WrongSecret", 401, "wrong secret"),
    ("old123.0123456789abcdef", "Expired", 401, "expired at 2027-01-15T07:59:59Z"),
    ("old123.aaaaaaaaaaaaaaaa", "WrongSecret", 401, "wrong secret"),  # the secret first: no expiry to a guesser
    ("signin.0123456789abcdef", "NotForAuthentication", 403, "not for authentication"),
])
def test_check_admits_or_says_why(given: str, cause: str | None, code: int, says: str) -> None:
    verdict = tokens.check(given, STORED, now=NOW)
    if cause is None:
        assert verdict == tokens.parse(given)
        return
    assert isinstance(verdict, tokens.Refusal)
    assert (verdict.cause, verdict.code) == (cause, code)
    assert says in verdict.message
    assert "0123456789abcdef" not in verdict.message and "aaaaaaaaaaaaaaaa" not in verdict.message


def test_a_token_expires_exactly_at_its_expiration() -> None:
    stored = {"abcdef": tokens.StoredToken("abcdef", GOOD.secret, NOW)}
    assert tokens.check(str(GOOD), stored, now=NOW - 0.001) == GOOD
    refusal = tokens.check(str(GOOD), stored, now=NOW)
    assert isinstance(refusal, tokens.Refusal) and refusal.cause == "Expired"


def test_the_secret_is_kubeadms_and_reads_back() -> None:
    secret = tokens.secret_object(GOOD, expires=NOW, description="for n2")
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2027-01-15T08:00:00Z",
                    "usage-bootstrap-authentication": "true", "description": "for n2"}
    assert tokens.stored_token(secret) == tokens.StoredToken("abcdef", GOOD.secret, NOW, True, "for n2")
    forever = tokens.stored_token(tokens.secret_object(GOOD, expires=None, description=""))
    assert forever is not None and forever.expires is None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("secret", "expected"), [
    ({"type": "Opaque", "metadata": {"name": "bootstrap-token-abcdef"}, "data": {"token-id": _b64("abcdef")}}, None),
    ({"type": tokens.TOKEN_TYPE, "metadata": {"name": "bootstrap-token-other1"},
      "data": {"token-id": _b64("abcdef")}}, None),  # the name must match the id
    ({"type": tokens.TOKEN_TYPE, "metadata": {"name": "bootstrap-token-abcdef"},
      "data": {"token-id": "not base64!"}}, None),
    ({"type": tokens.TOKEN_TYPE, "metadata": {"name": "bootstrap-token-abcdef"},
      "data": {"token-id": _b64("abcdef"), "expiration": _b64("tomorrow")}}, None),
    ({"type": tokens.TOKEN_TYPE, "metadata": {"name": "bootstrap-token-abcdef"},  # as kubectl create writes it
      "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                     "expiration": "2027-01-15T09:00:00+01:00", "usage-bootstrap-authentication": "true"}},
     tokens.StoredToken("abcdef", "0123456789abcdef", NOW, True, "")),
])
def test_only_well_formed_token_secrets_count(secret: dict[str, Any], expected: tokens.StoredToken | None) -> None:
    assert tokens.stored_token(secret) == expected


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("1s", 1), ("0", 0),
                                                ("1d", 86400), ("500ms", 0.5), ("45", 45), (" 2m ", 120)])
def test_ttls_read_as_go_durations(text: str, seconds: float) -> None:
    assert tokens.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "1 hour", "1h-", "1y", "tomorrow"])
def test_bad_ttls_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        tokens.parse_ttl(text)


def test_join_command() -> None:
    assert tokens.join_command(GOOD) == "meshd agent --join abcdef.0123456789abcdef"
    assert tokens.join_command(GOOD, "https://10.0.0.1:7700").endswith("--server https://10.0.0.1:7700")


def test_token_list_rows_never_carry_the_secret() -> None:
    row = token_json(STORED["old123"], NOW)
    assert row == {"id": "old123", "expires": "2027-01-15T07:59:59Z", "expired": True,
                   "usages": ["authentication"], "description": ""}


# --- the join request -------------------------------------------------------------------------------------

CSR = "-----BEGIN CERTIFICATE REQUEST-----..."


@pytest.mark.parametrize(("body", "error"), [
    ([], "JSON object"),
    ({"node": "n2", "csr": CSR}, "'token'"),
    ({"token": str(GOOD), "csr": CSR}, "'node'"),
    ({"token": str(GOOD), "node": "n2"}, "'csr'"),
    ({"token": 5, "node": "n2", "csr": CSR}, "'token'"),
    ({"token": str(GOOD), "node": "N2", "csr": CSR}, "not a DNS subdomain"),
    ({"token": str(GOOD), "node": "n2/../x", "csr": CSR}, "not a DNS subdomain"),
    ({"token": str(GOOD), "node": "n" * 254, "csr": CSR}, "not a DNS subdomain"),
])
def test_bad_join_requests_say_what_is_wrong(body: Any, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        validate_request(body)


def test_a_good_join_request() -> None:
    assert validate_request({"token": str(GOOD), "node": "node-2.lan", "csr": CSR}) == \
        (str(GOOD), "node-2.lan", CSR.encode())


def test_rate_limiter_allows_a_burst_then_the_rate_per_address() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=3, clock=lambda: now[0])
    assert [limiter.wait("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait("a") == pytest.approx(1.0)
    assert limiter.wait("b") == 0  # another client has its own bucket
    now[0] = 0.5
    assert limiter.wait("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.wait("a") == 0


def test_rate_limiter_forgets_the_oldest_clients() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=2, clock=lambda: 0.0)
    for client in ("a", "b", "c"):
        assert limiter.wait(client) == 0
    assert limiter.wait("a") == 0  # forgotten: a full bucket again
    assert limiter.wait("c") > 0


def test_csrs_are_signed_by_the_issuer(tmp_path: Any) -> None:
    key, csr = make_key_and_csr("n2")
    assert load_csr(csr).subject.rfc4514_string() == "CN=system:node:n2,O=system:nodes"
    issue = StateDirIssuer(tmp_path / "ca")
    ca_pem, cert_pem = issue("n2", csr)
    assert ca_pem.startswith(b"-----BEGIN CERTIFICATE") and cert_pem.startswith(b"-----BEGIN CERTIFICATE")
    assert issue("n3", make_key_and_csr("n3")[1])[0] == ca_pem  # one CA
    assert oct((tmp_path / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(CsrError, match="not a PEM"):
        issue("n2", b"junk")


def test_only_token_holders_post_without_a_bearer_token() -> None:
    common = {"headers": {}, "host": "h", "token": "t", "local_owner": False, "has_body": True}
    assert decide(method="POST", path="/meshd/v1/join", **common) is None  # type: ignore[arg-type]
    for method, path in (("POST", "/meshd/v1/tokens"), ("GET", "/meshd/v1/tokens"),
                         ("DELETE", "/meshd/v1/tokens/abcdef"), ("GET", "/meshd/v1/join")):
        refusal = decide(method=method, path=path, **common)  # type: ignore[arg-type]
        assert refusal is not None and refusal.code == 401
    browser = {**common, "headers": {"Origin": "http://evil.example"}}
    refusal = decide(method="POST", path="/meshd/v1/join", **browser)  # type: ignore[arg-type]
    assert refusal is not None and refusal.code == 403


# --- discovery and the joining node ---------------------------------------------------------------------

@pytest.mark.parametrize(("properties", "peer"), [
    ({b"cluster": b"c1", b"node": b"n1", b"api": b"https://10.0.0.1:7700"}, Peer("https://10.0.0.1:7700", "c1", "n1")),
    ({b"cluster": b"c1", b"node": b"n1", b"api": b"http://10.0.0.1:7700"}, None),
    ({b"node": b"n1", b"api": b"https://10.0.0.1:7700"}, None),
    ({b"cluster": b"c1", b"node": None, b"api": b"https://10.0.0.1:7700"}, None),
    ({b"namespace": b"default", b"service": b"web"}, None),
])
def test_peers_from_adverts(properties: dict[bytes, bytes | None], peer: Peer | None) -> None:
    assert peer_from_properties(properties) == peer


@pytest.mark.parametrize(("host", "addresses", "expected"), [
    ("10.0.0.5", ["127.0.0.1", "10.0.0.9"], ["10.0.0.5"]),
    ("0.0.0.0", ["127.0.0.1", "10.0.0.9", "192.168.1.2"], ["10.0.0.9", "192.168.1.2"]),
    ("0.0.0.0", ["127.0.0.1"], ["127.0.0.1"]),
    ("127.0.0.1", [], ["127.0.0.1"]),
])
def test_advertised_addresses(host: str, addresses: list[str], expected: list[str]) -> None:
    assert advertised_addresses(host, addresses) == expected


def test_instance_names_are_one_label_per_node_and_cluster() -> None:
    assert instance_name("n1", "0123456789abcdef") == "n1@01234567"
    assert len(instance_name("n" * 80, "c").encode()) <= 63


@pytest.mark.parametrize(("text", "url"), [("https://10.0.0.1:7700", "https://10.0.0.1:7700"),
                                           ("10.0.0.1:7700", "https://10.0.0.1:7700"),
                                           ("https://host.lan:7700/", "https://host.lan:7700")])
def test_server_urls(text: str, url: str) -> None:
    assert server_url(text) == url


@pytest.mark.parametrize("text", ["http://10.0.0.1:7700", "10.0.0.1", "https://h:0", "https://h:x", "h:7700/x"])
def test_bad_server_urls(text: str) -> None:
    with pytest.raises(ValueError, match="--server"):
        server_url(text)


def test_answers_are_read_or_refusals_raised() -> None:
    answer = parse_answer("https://a:1", 200, {"store": "etcd://10.0.0.1:2379", "ca": "CA", "certificate": "C"})
    assert answer.store == "etcd://10.0.0.1:2379"
    status = {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": 'bootstrap token "x" expired at T',
              "details": {"causes": [{"reason": "Expired", "message": "..."}]}}
    with pytest.raises(JoinRefused, match='https://a:1 refused to admit this node: bootstrap token "x" expired') as e:
        parse_answer("https://a:1", 401, status)
    assert e.value.cause == "Expired"
    with pytest.raises(JoinRefused) as plain:
        parse_answer("https://a:1", 409, {"reason": "AlreadyExists", "message": "taken"})
    assert plain.value.cause == "AlreadyExists"
    with pytest.raises(JoinError, match="not one"):
        parse_answer("https://a:1", 200, {"store": "mysql://x", "ca": "CA", "certificate": "C"})
    with pytest.raises(JoinError, match="is it a meshd agent"):
        parse_answer("https://a:1", 200, {"hello": "world"})


# --- the agent's proof, before the node sends its token ---------------------------------------------------

CERT = "ab" * 32


def test_only_a_holder_of_the_secret_makes_the_proof() -> None:
    proof = tokens.server_proof(GOOD.secret, "00" * 16, CERT)
    assert tokens.proof_matches(GOOD, "00" * 16, CERT, proof)
    assert tokens.proof_matches(GOOD, "00" * 16, CERT.upper(), proof)
    assert not tokens.proof_matches(GOOD, "11" * 16, CERT, proof)  # another nonce: no replay
    assert not tokens.proof_matches(GOOD, "00" * 16, "cd" * 32, proof)  # another certificate: no relay
    assert not tokens.proof_matches(tokens.BootstrapToken("abcdef", "x" * 16), "00" * 16, CERT, proof)


@pytest.mark.parametrize(("token_id", "cause"), [("abcdef", None), ("never0", None), ("old123", "Expired"),
                                                 ("zzzzzz", "UnknownToken"), ("ABC", "Malformed"),
                                                 ("signin", "NotForAuthentication")])
def test_check_id_needs_no_secret(token_id: str, cause: str | None) -> None:
    verdict = tokens.check_id(token_id, STORED, now=NOW)
    if cause is None:
        assert verdict == STORED[token_id]
    else:
        assert isinstance(verdict, tokens.Refusal) and verdict.cause == cause


def test_the_joining_node_checks_the_proof() -> None:
    from meshd.cluster.joining import check_proof

    nonce = "00" * 16
    good = {"certificateSHA256": CERT, "proof": tokens.server_proof(GOOD.secret, nonce, CERT)}
    assert check_proof("https://a:1", GOOD, nonce, 200, good) == CERT
    for body in ({**good, "proof": tokens.server_proof("y" * 16, nonce, CERT)}, {**good, "certificateSHA256": "x"},
                 {"proof": good["proof"]}, None):
        with pytest.raises(JoinRefused, match='"abcdef": wrong secret .* the token was not sent') as caught:
            check_proof("https://a:1", GOOD, nonce, 200, body)
        assert caught.value.cause == "WrongSecret"
    expired = {"kind": "Status", "code": 401, "message": 'bootstrap token "abcdef" expired at T',
               "details": {"causes": [{"reason": "Expired"}]}}
    with pytest.raises(JoinRefused, match="expired at T") as refused:
        check_proof("https://a:1", GOOD, nonce, 401, expired)
    assert refused.value.cause == "Expired"


@pytest.mark.parametrize(("api_host", "interfaces", "expected"), [
    ("10.0.0.5", "all", "all"),
    ("0.0.0.0", ["10.0.0.5"], ["10.0.0.5"]),
    ("127.0.0.1", "all", ["127.0.0.1"]),  # a loopback API: 127.0.0.1 means "me" to every other machine
    ("127.0.0.1", ["10.0.0.5", "127.0.0.1"], ["127.0.0.1"]),
    ("localhost", ["10.0.0.5"], ["127.0.0.1"]),
])
def test_a_loopback_api_is_advertised_on_loopback_only(api_host: str, interfaces: Any, expected: Any) -> None:
    from meshd.cluster.discovery import advert_interfaces

    assert advert_interfaces(api_host, interfaces) == expected


def test_agent_flags_for_joining() -> None:
    from meshd.cli.common import CliError
    from meshd.cli.main import build_agent_options

    values = build_agent_options({"join": str(GOOD), "server": "10.0.0.1:7700", "token_ttl": None}, None)
    assert values == {"join": str(GOOD), "server": "https://10.0.0.1:7700"}
    assert build_agent_options({"token_ttl": "1h"}, None) == {"token_ttl": 3600.0}
    for bad, says in (({"join": "abc"}, "malformed"), ({"server": "https://h:1"}, "with --join"),
                      ({"join": str(GOOD), "store": "etcd://h:1"}, "give one"), ({"token_ttl": "soon"}, "duration"),
                      ({"token_ttl": "4000d"}, "at most 10 years")):
        with pytest.raises(CliError, match=says):
            build_agent_options(bad, None)


@pytest.mark.parametrize("ttl", [-1.0, float("nan"), float("inf"), 1e12])
async def test_a_token_ttl_out_of_range_is_refused(ttl: float) -> None:
    from meshd.cluster.bootstrap import create_token
    from meshd.store import ObjectStore

    with pytest.raises(ValueError, match="ttl is 0"):
        await create_token(ObjectStore(None), ttl=ttl, description="")
