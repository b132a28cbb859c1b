-- Go on as an outcome script does (go_on in lib.lua), with no outcome: the worker recorded it
-- without going on, ran the job's hooks, and starts its next job only now, so that a slow hook is
-- never counted against the next job's deadline (worker.py, _finish).
-- ARGV: the arguments by name (JSON: worker, token (its lease), now, now_iso, and go_on's).
-- Returns 'fenced' when the worker lost its lease, else go_on's reply.
local args = cjson.decode(ARGV[1])
if not lease_holds(args.worker, args.token) then return 'fenced' end
return go_on(args)
