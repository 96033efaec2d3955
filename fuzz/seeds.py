#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/ from the repository's own
files: every folder's roles.toml and fixtures, the README's and the server tests' request
bodies. Run it after changing the folders or ROUTES in fuzz_targets/http.rs; the names are
content hashes, so rerunning it is idempotent."""

import hashlib
import json
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
HERE = ROOT / "fuzz" / "corpus"
# FOLDERS of fuzz/src/lib.rs, read from there: a seed's first byte selects its folder.
FOLDERS = re.findall(
    r'"([^"]+)"',
    re.search(r"pub const FOLDERS[^=]*=\s*\[(.*?)\];", (ROOT / "fuzz" / "src" / "lib.rs").read_text(), re.S).group(1),
)
# Indices into ROUTES and IDS of fuzz_targets/http.rs.
ROUTES = [
    ("POST", "/v1/users"), ("GET", "/v1/users"), ("GET", "/v1/users/{id}"),
    ("PATCH", "/v1/users/{id}"), ("DELETE", "/v1/users/{id}"), ("PUT", "/v1/users/{id}/role"),
    ("POST", "/v1/users/{id}/deactivate"), ("POST", "/v1/users/{id}/reactivate"),
    ("POST", "/v1/users/{id}/move"), ("PUT", "/v1/users/{id}/companies"),
    ("GET", "/v1/users/{id}/api-keys"), ("POST", "/v1/users/{id}/api-keys"),
    ("DELETE", "/v1/users/{id}/api-keys/{id}"), ("GET", "/v1/companies/{id}"),
    ("GET", "/v1/grants"), ("POST", "/v1/grants"), ("POST", "/v1/grants/{id}/approve"),
    ("POST", "/v1/grants/{id}/refuse"), ("POST", "/v1/grants/{id}/revoke"),
    ("GET", "/v1/invitations"), ("POST", "/v1/invitations"), ("DELETE", "/v1/invitations/{id}"),
    ("POST", "/v1/invitations/accept"), ("GET", "/v1/audit"), ("POST", "/v1/authorize"),
    ("POST", "/v1/authorize/batch"), ("POST", "/v1/permissions"),
    ("POST", "/access/v1/evaluation"), ("POST", "/access/v1/evaluations"), ("DELETE", "/v1/users"),
]
IDS = ["own1", "reg1", "bown", "acme", "beta", "{grant}", "nobody", "odd"]


def write(target, data):
    d = HERE / target
    d.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)


def roles():
    for i, folder in enumerate(FOLDERS):
        text = (ROOT / folder / "roles.toml").read_bytes()
        write("roles", bytes([i]) + text)
        write("roles", bytes([i | 0x80]) + text)


def fixtures():
    for i, folder in enumerate(FOLDERS):
        for f in sorted((ROOT / folder / "fixtures").glob("*.toml")):
            if f.name != "common.toml":
                write("fixtures", bytes([i]) + f.read_bytes())


def entities():
    return json.loads((ROOT / "server/tests/integration/entities.json").read_text())


OLIVIA = 'Portal::User::"olivia"'
S1 = 'Portal::Shipment::"s1"'


def queries():
    ents = entities()
    yield {"principal": OLIVIA, "action": "shipment.create", "resource": S1, "entities": ents}
    yield {"principal": {"type": "Portal::User", "id": "olivia"},
           "action": {"type": "Portal::Action", "id": "shipment.create"},
           "resource": {"type": "Shipment", "id": "s1"}, "context": {}, "entities": ents}
    yield {"principal": "olivia", "action": "shipment.read", "resource": S1,
           "entities": ents, "explain": True}
    yield {"principal": "olivia", "action": "shipment.create", "resource": "Portal::Shipmnt::\"s1\""}
    yield {"principal": "olivia", "action": "shipment.create", "resource": S1, "context": {"x": 1}}
    yield {"principal": "olivia", "action": "shipment.create", "resource": S1,
           "entities": [{"uid": {"type": "Portal::Nope", "id": "x"}, "attrs": {}, "parents": []}]}
    readme = (ROOT / "README.md").read_text()
    # The quick start's decision: the body after `-d '` of its first `curl … /v1/authorize`.
    start = readme.index("-d '", readme.index("curl -s localhost:8180/v1/authorize")) + len("-d '")
    yield json.loads(readme[start:readme.index("}'", start) + 1])


def requests():
    for q in queries():
        write("request", b"\x00" + json.dumps(q).encode())


def http():
    def seed(route, who, body):
        r = ROUTES.index(route)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        write("http", bytes([r, who]) + payload)

    own, reg, bown = 0, 1 * len(IDS), 2 * len(IDS)
    loc = lambda i: {"__entity": {"type": "Portal::Location", "id": i}}
    seed(("POST", "/v1/users"), own, {"id": "adm1", "login": "adm1", "role": "admin", "attrs": {"scope_all": True}})
    seed(("POST", "/v1/users"), own, {"login": "x", "role": "regular"})
    seed(("POST", "/v1/users"), own + 3, {"id": "u1", "company": "acme", "login": "u1", "role": "regular"})
    seed(("GET", "/v1/users"), own, b"company=acme&role=regular")
    seed(("GET", "/v1/users/{id}"), own + 1, b"")
    seed(("PATCH", "/v1/users/{id}"), own + 1, {"name": "Regina"})
    seed(("PATCH", "/v1/users/{id}"), own + 1, {"flags": ["isolated"]})
    seed(("PATCH", "/v1/users/{id}"), own + 1, {"attrs": {"scope_all": False, "locations": [loc("b1")], "actors": []}})
    seed(("DELETE", "/v1/users/{id}"), own + 1, b"")
    seed(("PUT", "/v1/users/{id}/role"), own + 1, {"role": "admin"})
    seed(("POST", "/v1/users/{id}/deactivate"), own + 1, {})
    seed(("POST", "/v1/users/{id}/reactivate"), own + 1, {})
    seed(("POST", "/v1/users/{id}/move"), own + 1, {"company": "beta"})
    seed(("PUT", "/v1/users/{id}/companies"), own + 1, {"companies": [{"company": "beta", "role": "regular"}]})
    seed(("GET", "/v1/users/{id}/api-keys"), own, b"")
    seed(("POST", "/v1/users/{id}/api-keys"), own, {"name": "ci"})
    seed(("DELETE", "/v1/users/{id}/api-keys/{id}"), own, b"")
    seed(("GET", "/v1/companies/{id}"), own + 3, b"")
    seed(("GET", "/v1/grants"), bown, b"company=beta")
    seed(("POST", "/v1/grants"), reg, {"company": "beta"})
    seed(("POST", "/v1/grants"), reg, {"company": "beta", "locations": ['Portal::Location::"bl1"'], "actors": []})
    seed(("POST", "/v1/grants/{id}/approve"), bown + 5, {})
    seed(("POST", "/v1/grants/{id}/refuse"), bown + 5, {})
    seed(("POST", "/v1/grants/{id}/revoke"), bown + 5, {})
    seed(("GET", "/v1/invitations"), own, b"")
    seed(("POST", "/v1/invitations"), own, {"email": "new@acme.test", "role": "regular", "attrs": {"scope_all": True}})
    seed(("DELETE", "/v1/invitations/{id}"), own + 6, b"")
    seed(("POST", "/v1/invitations/accept"), 3 * len(IDS), {"token": "x", "user_id": "inv1", "name": "Ivy"})
    seed(("GET", "/v1/audit"), own, b"actor=own1&limit=5")
    seed(("GET", "/v1/audit"), own, b"format=csv")
    for q in queries():
        seed(("POST", "/v1/authorize"), own, q)
    seed(("POST", "/v1/authorize"), own, {"principal": "own1", "action": "shipment.read", "resource": S1})
    seed(("POST", "/v1/authorize/batch"), own, {"checks": [
        {"id": "a", "principal": OLIVIA, "action": "shipment.create", "resource": S1},
        {"id": "b", "principal": "olivia", "action": "shipment.export", "resource": S1}], "entities": entities()})
    seed(("POST", "/v1/permissions"), own, {"principal": OLIVIA, "resource": S1, "entities": entities()})
    seed(("POST", "/v1/permissions"), own, {"principal": "own1", "resource_type": "Portal::Shipment"})
    seed(("POST", "/access/v1/evaluation"), own, {"subject": {"type": "User", "id": "olivia"},
         "action": {"name": "shipment.create"}, "resource": {"type": "Shipment", "id": "s1"}, "context": {}})
    seed(("POST", "/access/v1/evaluations"), own, {"subject": {"type": "User", "id": "olivia"},
         "resource": {"type": "Shipment", "id": "s1"}, "evaluations": [
             {"action": {"name": "shipment.create"}}, {"action": {"name": "no.such"}}],
         "options": {"evaluations_semantic": "deny_on_first_deny"}})


if __name__ == "__main__":
    roles()
    fixtures()
    requests()
    http()
    for t in sorted(os.listdir(HERE)):
        files = list((HERE / t).iterdir())
        print(f"{t}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
