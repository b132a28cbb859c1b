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
    KEYS[8] 'jobctl:breaker:' prefix: circuit breakers' hashes
    KEYS[9...] for each queue of go_on_queues (lib.lua: the queues, then start_queue), in order:
               its list, started registry, scheduled set and rate window
    ARGV[1] lease token
    ARGV[2] worker
    ARGV[3] now (unix time)
    ARGV[4] now_iso
    ARGV[5...] go_on's (go_on_args in lib.lua): start, start_queue, its attempt,
      deadline and score, reserve, limits, queues...
  Output:
    go_on's reply (lib.lua): {started, '', n, reserved rows, started rows}
    Refusal.FENCED the worker's lease is gone: nothing written
]]
--- @include "lib"
if not lease_holds(KEYS[1], ARGV[1]) then return Refusal.FENCED end
local args = go_on_args(ARGV, 5, ARGV[2], tonumber(ARGV[3]), ARGV[4])
local k = {active_list = KEYS[2], job = KEYS[3], slots = KEYS[4], job_rate = KEYS[5], worker = KEYS[6],
  active = KEYS[7], breaker = KEYS[8], by_queue = queue_keys(KEYS, 9, go_on_queues(args))}
return go_on(k, args)
