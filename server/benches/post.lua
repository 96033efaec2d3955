-- wrk script: POST the JSON body in the file named by $BODY to the path of the URL.
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

-- Count non-2xx answers so a run that only measured errors is visible.
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
