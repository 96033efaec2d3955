#!/usr/bin/env python3
"""Writes a Cedar JSON entities file of about N entities for the default policies.

Usage: gen_entities.py N OUT.json [REQUEST.json]
One company per 100 entities, one location per company, the rest users and shipments.
User `u0` (owner of `c0`) and shipment `s0` are the ones the load test asks about; with a
third argument, the request with those entities inline is written there too.
"""
import json
import sys

n = int(sys.argv[1])
out = []
companies = max(1, n // 100)
roles = ["owner", "admin", "regular"]
for r in roles:
    out.append({"uid": {"type": "Portal::Role", "id": r}, "attrs": {}, "parents": []})
for c in range(companies):
    out.append({"uid": {"type": "Portal::Company", "id": f"c{c}"},
                "attrs": {"account_type": "customer", "subscription": ["insights"]}, "parents": []})
    out.append({"uid": {"type": "Portal::Location", "id": f"l{c}"}, "attrs": {},
                "parents": [{"type": "Portal::Company", "id": f"c{c}"}]})
rest = max(2, n - len(out))
for i in range(rest // 2):
    c = i % companies
    company = {"type": "Portal::Company", "id": f"c{c}"}
    role = roles[0] if i < companies else roles[i % 3]
    out.append({"uid": {"type": "Portal::User", "id": f"u{i}"},
                "attrs": {"company": {"__entity": company}, "role": {"__entity": {"type": "Portal::Role", "id": role}},
                          "active": True, "flags": [], "addons": [], "scope_all": True, "locations": [],
                          "actors": [], "all_customers": False, "customers": []},
                "parents": [{"type": "Portal::Role", "id": role}, company]})
    out.append({"uid": {"type": "Portal::Shipment", "id": f"s{i}"},
                "attrs": {"owner": {"__entity": {"type": "Portal::User", "id": f"u{i}"}}},
                "parents": [{"type": "Portal::Location", "id": f"l{c}"}, company]})
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
if len(sys.argv) > 3:
    keep = {("Portal::Role", "owner"), ("Portal::Company", "c0"), ("Portal::Location", "l0"),
            ("Portal::User", "u0"), ("Portal::Shipment", "s0")}
    inline = [e for e in out if (e["uid"]["type"], e["uid"]["id"]) in keep]
    with open(sys.argv[3], "w") as f:
        json.dump({"principal": "u0", "action": "shipment.create",
                   "resource": "Portal::Shipment::\"s0\"", "entities": inline}, f)
