-- wrk script: POST the JSON body in the file named by $BODY to the path of the URL.
-- No `response` callback: calling into Lua for every answer costs the load generator (which
-- shares the machine's cores with the server) more than the server spends on a decision.
-- wrk itself reports answers that are not 2xx as "Non-2xx or 3xx responses".
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
