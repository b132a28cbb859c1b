--[[ Start up to `count` jobs for a worker (see start_next in lib.lua).
  Input:
    KEYS[1] the worker's hash, which holds its lease
    KEYS[2] the worker's in-flight list
    KEYS[3] 'rq:job:' prefix: the hashes of the jobs taken
    KEYS[4] 'jobctl:slots:' prefix: job types' concurrency slots
    KEYS[5] 'jobctl:rate:job:' prefix: job types' rate windows
    KEYS[6] 'rq:worker:' prefix: the hashes of the workers holding slots
    KEYS[7] 'jobctl:active:' prefix: their in-flight lists
    KEYS[8] 'jobctl:breaker:' prefix: circuit breakers' hashes
    KEYS[9...] for each queue of ARGV's queues, in order: its list, started registry, scheduled
               set and rate window
    ARGV[1] lease token
    ARGV[2] worker
    ARGV[3] now (unix time)
    ARGV[4] now_iso
    ARGV[5] count
    ARGV[6] the worker's limits (JSON, see `limits` in lib.lua; '' for none)
    ARGV[7...] the queues to take from, in order
  Output:
    {row, ...} the rows of the jobs started (see job_row in lib.lua), maybe none
    Refusal.FENCED the worker's lease is gone: nothing written
]]
--- @include "lib"
if not lease_holds(KEYS[1], ARGV[1]) then return Refusal.FENCED end
local worker, now, now_iso, count = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local queues = {}
for i = 7, #ARGV do queues[#queues + 1] = ARGV[i] end
local k = {active_list = KEYS[2], job = KEYS[3], slots = KEYS[4], job_rate = KEYS[5], worker = KEYS[6],
  active = KEYS[7], breaker = KEYS[8], by_queue = queue_keys(KEYS, 9, queues)}
limits = ARGV[6] ~= '' and cjson.decode(ARGV[6]) or {}
return start_jobs(k, worker, now, now_iso, queues, count)
