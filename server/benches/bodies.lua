-- wrk script: POST bodies built before the run, one per line of the file named by $BODIES,
-- each thread from its own random line onwards, so the load generator spends its cores
-- sending, not building JSON. No `response` callback (see post.lua).
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local at = 1
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  at = math.random(1, #bodies)
end

function request()
  at = at % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[at])
end
