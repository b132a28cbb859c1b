--[[ A job finished: record it and, in the same round trip, go on with the worker's next job
  (go_on in lib.lua). Job tracking is not written here: the worker counts it (tracking.py).
  The job hash and its results stream get no EXPIRE here: the supervisors' sweep deletes them
  once their finished-registry entry is due (sweep.lua), which keeps this script lean.
  Input:
    KEYS[1] the worker's in-flight list
    KEYS[2] the started registry of the job's queue
    KEYS[3] the finished registry of the job's queue
    KEYS[4] 'rq:job:' prefix: the job's hash (and dependency sets), its dependents', the next jobs'
    KEYS[5] 'rq:results:' prefix: the job's results stream, a dependent's
    KEYS[6] 'jobctl:slots:' prefix: job types' concurrency slots
    KEYS[7] 'jobctl:rate:job:' prefix: job types' rate windows
    KEYS[8] 'rq:worker:' prefix: the hashes of the workers holding slots
    KEYS[9] 'jobctl:active:' prefix: their in-flight lists
    KEYS[10] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[11] 'rq:queue:' prefix, KEYS[12] 'rq:scheduled:' prefix, KEYS[13] 'rq:deferred:' prefix,
      KEYS[14] 'rq:canceled:' prefix: the lists and registries of its dependents' queues
    KEYS[15] 'rq:queues' set of known queues
    KEYS[16] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[17] 'jobctl:batches-due' set of batch callbacks due
    KEYS[18] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    KEYS[19] 'jobctl:breaker:' prefix: circuit breakers' hashes (the job's breaker records it)
    KEYS[20...] for each queue of go_on_queues (lib.lua), in order: its list, started registry,
                scheduled set and rate window
    ARGV[1] job id
    ARGV[2] its queue
    ARGV[3] worker
    ARGV[4] attempt
    ARGV[5] now (unix time)
    ARGV[6] now_iso
    ARGV[7] the result as JSON
    ARGV[8] the result base64-encoded (RQ's results-stream form)
    ARGV[9] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[10...] go_on's (go_on_args in lib.lua): start, start_queue, reserve, limits, queues...
  Output:
    {started, row, reserved, breaker} go_on's reply, and what the job's breaker did: 'closed <name>'
      (this was its half-open trial) or ''
    Refusal.FENCED the job was recovered from this worker: nothing written
]]
--- @include "lib"
local id, queue, worker, attempt, now, now_iso = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
if not leave_started(id, KEYS[1], KEYS[2], attempt) then return Refusal.FENCED end
local args = go_on_args(ARGV, 10, worker, now, now_iso)
local k = {active_list = KEYS[1], job = KEYS[4], results = KEYS[5], slots = KEYS[6], job_rate = KEYS[7],
  worker = KEYS[8], active = KEYS[9], unique = KEYS[10], queue = KEYS[11], scheduled = KEYS[12],
  deferred = KEYS[13], canceled = KEYS[14], queues = KEYS[15], batch = KEYS[16], batches_due = KEYS[17],
  outbox = KEYS[18], breaker = KEYS[19], by_queue = queue_keys(KEYS, 20, go_on_queues(args)),
  wake = ARGV[9]}
local key = job_key(k, id)
local finished = KEYS[3]
local job = redis.call('HMGET', key, 'result_ttl', 'jobctl_unique', 'jobctl_dependents', 'jobctl_slot', 'jobctl_batch',
  'jobctl_breaker')
redis.call('HSET', key, 'status', 'finished', 'ended_at', now_iso, 'result', ARGV[7])
if tonumber(attempt) > 1 then
  -- a retried job that finished, as RQ leaves one: no exc_info (Job.exc_info None) and only this
  -- outcome in its results stream (RQ's worker records no result for an attempt it retries);
  -- each attempt's traceback stays in its own record (joboutput.py)
  redis.call('HDEL', key, 'exc_info')
  redis.call('DEL', results_key(k, id))
end
-- RQ's Job.return_value() reads the results stream
redis.call('XADD', results_key(k, id), 'MAXLEN', '~', '10', '*', 'type', '1', 'worker_name', worker,
  'return_value', ARGV[8], 'execution_ended_at', now)
local ttl = whole(job[1]) or RQ_RESULT_TTL
-- RQ's result_ttl: -1 keeps the job for ever (a registry entry that never falls due), 0 keeps nothing
if ttl > 0 then redis.call('ZADD', finished, now + ttl, id)
elseif ttl < 0 then redis.call('ZADD', finished, '+inf', id) end
if job[2] then release_unique(k, id) end
if job[3] then settle_dependents(k, id, now, now_iso) end
release_slot(k, id, job[4])
if job[5] then batch_ended(k, id, 'succeeded', now) end
local breaker = job_breaker_outcome(k, args.limits, id, job[6], false, now)
if ttl == 0 then delete_job(k, id) end
local reply = go_on(k, args)
reply[4] = breaker
return reply
