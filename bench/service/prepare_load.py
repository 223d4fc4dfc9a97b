#!/usr/bin/env python3
"""Creates the users (and, for the feedback run, recommendation events) that the load
benchmark's wrk scripts replay, and writes them as Lua tables.

    prepare_load.py <base-url> <users> <events-per-user> <out-dir>

Writes <out-dir>/recommend.lua (POST /v1/recommendations, users round-robin) and
<out-dir>/feedback.lua (POST /v1/feedback on the events, a fresh idempotency key each).
"""
import json
import sys
import urllib.request


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    base, n_users, n_events, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    users, events = [], []
    goals = ["lose", "maintain", "gain"]
    diets = ["none", "vegetarian", "pescatarian", "none"]
    for i in range(n_users):
        u = call(base, "POST", "/v1/users", {
            "sex": "female" if i % 2 else "male", "age": 20 + i % 50, "height_cm": 160 + i % 30,
            "weight_kg": 55 + i % 40, "goal": goals[i % 3], "diet": diets[i % 4],
            "allergens": ["peanuts"] if i % 5 == 0 else []})
        users.append((u["id"], u["token"]))
        for _ in range(n_events):
            r = call(base, "POST", "/v1/recommendations", {"user_id": u["id"], "slot": "lunch", "n": 3}, u["token"])
            events.append((r["event_id"], r["meals"][0]["meal_id"], u["token"]))
    with open(out + "/recommend.lua", "w") as f:
        f.write("local users = {%s}\n" % ",".join("{%s,%s}" % (lua_string(i), lua_string(t)) for i, t in users))
        f.write("""
local n = 0
request = function()
  n = n + 1
  local u = users[(n % #users) + 1]
  return wrk.format("POST", "/v1/recommendations",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. u[2]},
    '{"user_id":"' .. u[1] .. '","slot":"lunch","n":3}')
end
""")
    with open(out + "/feedback.lua", "w") as f:
        f.write("local events = {%s}\n" % ",".join(
            "{%s,%s,%s}" % (lua_string(e), lua_string(m), lua_string(t)) for e, m, t in events))
        f.write("""
local n = 0
local tag = tostring(math.random(1, 1000000000))
setup = function(thread) thread:set("tid", tostring(math.random(1, 1000000000))) end
request = function()
  n = n + 1
  local e = events[(n % #events) + 1]
  local outcome = (n % 3 == 0) and "rejected" or "accepted"
  return wrk.format("POST", "/v1/feedback",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. e[3]},
    '{"event_id":"' .. e[1] .. '","meal_id":"' .. e[2] .. '","outcome":"' .. outcome ..
    '","idempotency_key":"' .. tag .. '-' .. (tid or "t") .. '-' .. n .. '"}')
end
""")
    print("prepared %d users, %d events" % (len(users), len(events)))


if __name__ == "__main__":
    main()
