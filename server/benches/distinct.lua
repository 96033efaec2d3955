-- wrk script: every request a question not asked before (as near as chance allows), so no
-- cache of the server answers it: a random user `u<i>` of the N the entities file holds, a
-- random action of three, a random shipment `s<j>`. BATCH=K sends K such checks per request to
-- /v1/authorize/batch instead of one to /v1/authorize. N and BATCH come from the environment.
local n = tonumber(os.getenv("N") or "100")
local batch = tonumber(os.getenv("BATCH") or "0")
local actions = { "shipment.create", "shipment.read", "shipment.export" }
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

local function check(i)
  local p = math.random(0, n - 1)
  local r = math.random(0, n - 1)
  local a = actions[math.random(1, 3)]
  local id = ""
  if i then id = string.format('"id":%d,', i) end
  return string.format('{%s"principal":"u%d","action":"%s","resource":"Portal::Shipment::\\"s%d\\""}', id, p, a, r)
end

function request()
  local body
  if batch > 0 then
    local parts = {}
    for i = 1, batch do parts[i] = check(i) end
    body = '{"checks":[' .. table.concat(parts, ",") .. ']}'
  else
    body = check(nil)
  end
  return wrk.format(nil, nil, nil, body)
end
