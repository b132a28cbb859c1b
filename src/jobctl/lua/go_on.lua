--[[ Go on as an outcome script does (go_on in lib.lua), with no outcome: the worker recorded it
  without going on, ran the job's hooks, and starts its next job only now, so that a slow hook is
  never counted against the next job's deadline (worker.py, _finish).
  Input:
    KEYS[1] the worker's hash, which holds its lease
    KEYS[2] the worker's in-flight list
    KEYS[3] 'rq:job:' prefix: the hashes of the jobs started or reserved
    KEYS[4] 'jobctl:slots:' prefix: job types' concurrency slots
    KEYS[5] 'jobctl:rate:job:' prefix: job types' rate windows
    KEYS[6] 'rq:worker:' prefix: the hashes of the workers holding slots
    KEYS[7] 'jobctl:active:' prefix: their in-flight lists
    KEYS[8...] for each queue of go_on_queues (lib.lua: the queues, then start_queue), in order:
               its list, started registry, scheduled set and rate window
    ARGV[1] the arguments by name (JSON): worker, token (its lease), now, now_iso, and go_on's
  Output:
    {started, row, reserved} go_on's reply
    Refusal.FENCED the worker's lease is gone: nothing written
]]
--- @include "lib"
local args = cjson.decode(ARGV[1])
if not lease_holds(KEYS[1], args.token) then return Refusal.FENCED end
local k = {active_list = KEYS[2], job = KEYS[3], slots = KEYS[4], job_rate = KEYS[5], worker = KEYS[6],
  active = KEYS[7], by_queue = queue_keys(KEYS, 8, go_on_queues(args))}
return go_on(k, args)
