"""The pure parts of --host-names: which hosts lines the registry gives, the marked block, the mode choice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshd.hostnames import block_lines, choose_mode, host_entries, hosts_lines, replace_block
from meshd.model.endpoints import Endpoint, PortInfo, ServiceInfo, ServiceKey

PORTS = (PortInfo("http", 80, 8080),)


def service(name: str, address: str | None, namespace: str = "default") -> ServiceInfo:
    return ServiceInfo(ServiceKey(namespace, name), address, PORTS)


def endpoint(name: str, address: str, *, ready: bool = True, hostname: str = "") -> Endpoint:
    return Endpoint(name, address, {"http": 8080}, ready=ready, hostname=hostname)


# --- the lines ----------------------------------------------------------------------------------------------


def lines(services, endpoints=None, zone="cluster.local"):
    return list(hosts_lines(host_entries(services, endpoints or {}, zone=zone)))


def test_a_service_gets_its_three_names_on_its_address():
    assert lines([service("web", "10.213.130.7")]) == [
        "10.213.130.7\tweb.default.svc.cluster.local web.default.svc web.default"
    ]


def test_a_service_without_endpoints_still_has_its_address_and_the_zone_setting_applies():
    web = service("api", "127.214.0.9", namespace="shop")
    assert lines([web], {web.key: ()}, zone="mesh.test.") == ["127.214.0.9\tapi.shop.svc.mesh.test api.shop.svc api.shop"]


def test_a_headless_service_gets_a_line_per_ready_endpoint_and_statefulset_pods_their_own_names():
    db = service("db", None)
    eps = (
        endpoint("db-1", "10.213.0.12", hostname="db-1"),
        endpoint("db-0", "10.213.0.11", hostname="db-0"),
        endpoint("db-2", "10.213.0.13", hostname="db-2", ready=False),
        endpoint("other", "10.213.0.14"),
    )
    assert lines([db], {db.key: eps}) == [
        "10.213.0.11\tdb-0.db.default.svc.cluster.local db-0.db.default.svc db-0.db.default",
        "10.213.0.12\tdb-1.db.default.svc.cluster.local db-1.db.default.svc db-1.db.default",
        "10.213.0.11\tdb.default.svc.cluster.local db.default.svc db.default",
        "10.213.0.12\tdb.default.svc.cluster.local db.default.svc db.default",
        "10.213.0.14\tdb.default.svc.cluster.local db.default.svc db.default",
    ]


def test_an_alias_of_a_service_gets_its_addresses_and_one_out_of_the_zone_or_in_a_loop_none():
    web, db = service("web", "10.213.130.7"), service("db", None)
    alias = ServiceInfo(ServiceKey("shop", "front"), None, (), external_name="web.default.svc.cluster.local")
    chained = ServiceInfo(ServiceKey("default", "www"), None, (), external_name="front.shop.svc.cluster.local.")
    to_db = ServiceInfo(ServiceKey("default", "store"), None, (), external_name="db.default.svc.cluster.local")
    outside = ServiceInfo(ServiceKey("default", "ext"), None, (), external_name="db.example.com")
    missing = ServiceInfo(ServiceKey("default", "gone"), None, (), external_name="nope.default.svc.cluster.local")
    loop = ServiceInfo(ServiceKey("default", "loop"), None, (), external_name="loop.default.svc.cluster.local")
    eps = {db.key: (endpoint("db-0", "10.213.0.11", hostname="db-0"),)}
    assert lines([web, db, alias, chained, to_db, outside, missing, loop], eps) == [
        "10.213.0.11\tdb-0.db.default.svc.cluster.local db-0.db.default.svc db-0.db.default",
        "10.213.0.11\tdb.default.svc.cluster.local db.default.svc db.default",
        "10.213.130.7\tfront.shop.svc.cluster.local front.shop.svc front.shop",
        "10.213.0.11\tstore.default.svc.cluster.local store.default.svc store.default",  # no hostname lines
        "10.213.130.7\tweb.default.svc.cluster.local web.default.svc web.default",
        "10.213.130.7\twww.default.svc.cluster.local www.default.svc www.default",
    ]


def test_a_headless_service_with_nothing_ready_and_non_ipv4_addresses_give_no_line():
    db, odd = service("db", None), service("odd", "fd00::1")
    assert lines([db, odd], {db.key: (endpoint("db-0", "10.213.0.11", ready=False),)}) == []


def test_the_same_registry_gives_the_same_lines_in_any_order():
    a, b = service("a", "10.0.0.2"), service("b", "10.0.0.1")
    assert lines([a, b]) == lines([b, a])


# --- the block ----------------------------------------------------------------------------------------------

TAG = "0123abcd"
BEGIN, END = f"# BEGIN meshd {TAG}", f"# END meshd {TAG}"
NOTE = f"# the mesh's names, kept by the meshd agent {TAG}; edits inside this block are overwritten"
USER = "127.0.0.1 localhost\n# my notes   with  odd   spacing\n\t10.1.1.1\tbuild.lan  build \n\n::1 ip6-localhost\n"
ENTRY = "10.0.0.1\tweb.default.svc.cluster.local web.default.svc web.default"


def block(*entries: str) -> str:
    return "".join(f"{line}\n" for line in (BEGIN, NOTE, *entries, END))


@pytest.mark.parametrize(
    ("text", "entries", "expected"),
    [
        pytest.param(USER, [ENTRY], USER + block(ENTRY), id="appended, user lines kept byte for byte"),
        pytest.param("", [ENTRY], block(ENTRY), id="empty file"),
        pytest.param("127.0.0.1 localhost", [ENTRY], "127.0.0.1 localhost\n" + block(ENTRY), id="no trailing newline"),
        pytest.param("a\n" + block("10.9.9.9\tstale") + "b", [ENTRY], "a\n" + block(ENTRY) + "b",
                     id="stale block replaced where it stands, last line without newline kept"),
        pytest.param(USER + block("x") + block("y"), [ENTRY], USER + block(ENTRY), id="two blocks become one"),
        pytest.param(USER + block(ENTRY), [], USER, id="no entries: block removed"),
        pytest.param(USER, [], USER, id="no entries, no block: unchanged"),
        pytest.param(f"a\n  {BEGIN}  \r\n1.1.1.1 x\n{END}\r\nb\n", [], "a\nb\n", id="markers with odd whitespace"),
        pytest.param(f"a\n{BEGIN}\nmine 1\n", [ENTRY], "a\nmine 1\n" + block(ENTRY),
                     id="a BEGIN without END: the marker goes, the lines after it stay"),
        pytest.param(f"a\n{END}\nb\n", [], "a\nb\n", id="an END without BEGIN goes"),
        pytest.param("a\n# BEGIN meshd other\n1.2.3.4 o\n# END meshd other\n", [ENTRY],
                     "a\n# BEGIN meshd other\n1.2.3.4 o\n# END meshd other\n" + block(ENTRY),
                     id="another agent's block is left alone"),
        pytest.param("# BEGIN meshd 0123abcdef\n", [], "# BEGIN meshd 0123abcdef\n", id="a longer tag is not ours"),
        pytest.param("caf\xe9 \udcff\n", [ENTRY], "caf\xe9 \udcff\n" + block(ENTRY), id="odd bytes survive"),
    ],
)
def test_replace_block(text, entries, expected):
    assert replace_block(text, TAG, entries) == expected


def test_the_block_reads_back_and_replacing_twice_changes_nothing():
    once = replace_block(USER, TAG, [ENTRY])
    assert block_lines(once, TAG) == (ENTRY,)
    assert replace_block(once, TAG, [ENTRY]) == once
    assert block_lines(USER, TAG) is None


def test_a_tag_with_spaces_is_refused():
    with pytest.raises(ValueError, match="one word"):
        replace_block("", "my state dir", [ENTRY])


_line = st.text(st.characters(blacklist_characters="\n"), max_size=30)


@given(st.lists(_line, max_size=8), st.booleans(), st.lists(st.sampled_from([ENTRY, "10.0.0.2\tb"]), max_size=3))
def test_user_lines_always_survive_and_removal_restores_them(user, newline_at_end, entries):
    text = "\n".join(user) + ("\n" if newline_at_end and user else "")
    if any(line.strip() in (BEGIN, END) for line in user):
        return
    written = replace_block(text, TAG, entries)
    removed = replace_block(written, TAG, [])
    assert removed == text or (removed == text + "\n" and entries and text and not text.endswith("\n"))
    assert block_lines(written, TAG) == (tuple(entries) if entries else None)


# --- the mode -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "has_bridge", "reason", "mode", "warns"),
    [
        ("auto", True, None, "resolved", False),
        ("auto", True, "resolvectl is not installed", "hosts", False),
        ("auto", False, None, "hosts", False),
        ("resolved", True, None, "resolved", False),
        ("resolved", True, "resolvectl is not installed", "off", True),
        ("resolved", False, None, "off", True),
        ("hosts", True, None, "hosts", False),
        ("off", True, None, "off", False),
        ("sometimes", True, None, "off", True),
    ],
)
def test_choose_mode(requested, has_bridge, reason, mode, warns):
    chosen, warning = choose_mode(requested, has_bridge=has_bridge, resolved_reason=reason)
    assert chosen == mode and (warning is not None) == warns
    if reason and warns:
        assert reason in warning
