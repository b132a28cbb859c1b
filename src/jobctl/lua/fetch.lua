-- Start up to `count` jobs for a worker (see start_next in lib.lua).
-- ARGV: worker, lease token, now, now_iso, count, limits (JSON: see `limits` in lib.lua), queue...
-- Returns 'fenced' when the worker lost its lease, else a list of job rows (maybe empty).
local worker, token, now, now_iso, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
if not lease_holds(worker, token) then return 'fenced' end
limits = cjson.decode(ARGV[6])
local queues = queues_from(7)
local rows = {}
for _ = 1, count do
  local row = start_next(worker, now, now_iso, queues)
  if not row then break end
  table.insert(rows, row)
end
return rows
