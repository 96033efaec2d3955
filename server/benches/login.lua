-- wrk script for login.sh: each request signs in one of $USERS users (u0@acme.example, ...),
-- in turn, so the lockout's per-account bound on concurrent verifications does not apply.
local users = tonumber(os.getenv("USERS") or "40")
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"login":"u%d@acme.example","password":"orange kettle sunrise","device":"wrk"}', n % users)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
