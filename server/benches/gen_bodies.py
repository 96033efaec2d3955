#!/usr/bin/env python3
"""Writes request bodies for bodies.lua: one JSON body per line, every one a different question.

Usage: gen_bodies.py USERS SHIPMENTS COUNT BATCH OUT
A random user `u<i>` (i < USERS), a random action of three and a random shipment `s<j>`
(j < SHIPMENTS) per check; BATCH=0 writes single `POST /v1/authorize` bodies, BATCH=K bodies of
K checks for `POST /v1/authorize/batch`. Seeded: every run asks the same questions.
"""
import json
import random
import sys

users, shipments, count, batch, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(7)
actions = ["shipment.create", "shipment.read", "shipment.export"]


def check():
    return {"principal": f"u{rng.randrange(users)}", "action": rng.choice(actions),
            "resource": f'Portal::Shipment::"s{rng.randrange(shipments)}"'}


with open(out, "w") as f:
    for _ in range(count):
        if batch:
            body = {"checks": [dict(id=i, **check()) for i in range(batch)]}
        else:
            body = check()
        f.write(json.dumps(body, separators=(",", ":")) + "\n")
