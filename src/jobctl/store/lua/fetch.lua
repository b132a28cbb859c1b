-- Start up to `count` jobs for a worker (see start_next in lib.lua).
-- ARGV: the arguments by name (JSON: worker, token (its lease), now, now_iso, count, queues,
-- limits: see `limits` in lib.lua).
-- Returns 'fenced' when the worker lost its lease, else a list of job rows (maybe empty).
local args = cjson.decode(ARGV[1])
if not lease_holds(args.worker, args.token) then return 'fenced' end
limits = args.limits
local rows = {}
for _ = 1, args.count do
  local row = start_next(args.worker, args.now, args.now_iso, args.queues)
  if not row then break end
  table.insert(rows, row)
end
return rows
