--[[ Jobs finished: record them and, in the same round trip, go on with the worker's next jobs
  (go_on in lib.lua). A pool worker whose threads finish together sends their outcomes in one
  call (runtime/reservation.py, Together), which then starts one job for each thread that asked.
  Job tracking is not written here: the worker counts it (tracking.py).
  The job hash and its results stream get no EXPIRE here: the supervisors' sweep deletes them
  once their finished-registry entry is due (sweep.lua), which keeps this script lean.
  Input:
    KEYS[1] the worker's in-flight list
    KEYS[2] 'rq:wip:' prefix: the started registries of the jobs' queues (on a cluster, where
            every job is of one queue, its registry)
    KEYS[3] 'rq:finished:' prefix: the finished registries of the jobs' queues (the same)
    KEYS[4] 'rq:job:' prefix: the jobs' hashes (and dependency sets), their dependents', the next jobs'
    KEYS[5] 'rq:results:' prefix: the jobs' results streams, a dependent's
    KEYS[6] 'jobctl:slots:' prefix: job types' concurrency slots
    KEYS[7] 'jobctl:rate:job:' prefix: job types' rate windows
    KEYS[8] 'rq:worker:' prefix: the hashes of the workers holding slots
    KEYS[9] 'jobctl:active:' prefix: their in-flight lists
    KEYS[10] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[11] 'rq:queue:' prefix, KEYS[12] 'rq:scheduled:' prefix, KEYS[13] 'rq:deferred:' prefix,
      KEYS[14] 'rq:canceled:' prefix: the lists and registries of their dependents' queues
    KEYS[15] 'rq:queues' set of known queues
    KEYS[16] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[17] 'jobctl:batches-due' set of batch callbacks due
    KEYS[18] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    KEYS[19] 'jobctl:breaker:' prefix: circuit breakers' hashes (a job's breaker records it)
    KEYS[20...] for each queue of go_on_queues (lib.lua), in order: its list, started registry,
                scheduled set and rate window
    ARGV[1] worker
    ARGV[2] now (unix time)
    ARGV[3] now_iso
    ARGV[4] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[5] n, the number of jobs finished
    ARGV[6] how many jobs to start (go_on starts the first; the others as go_on would, without a
            reservation); '1' with one thread
    ARGV[7...] for each of the n jobs: its id, its queue, its attempt, its result as JSON and
               base64-encoded (RQ's results-stream form)
    ARGV[7 + 5n...] go_on's (go_on_args in lib.lua): start, start_queue, its attempt,
      deadline and score, reserve, limits, queues...
  Output:
    go_on's reply (lib.lua): {started, breaker, n, reserved rows, started rows}, its breaker item
      what the jobs' breakers did, one line each: 'closed <name>' (a job was its half-open
      trial), '' for none; the started rows: go_on's, then the other jobs started
    Refusal.FENCED a job was recovered from this worker: nothing written
]]
--- @include "lib"
local worker, now, now_iso, n, starts = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
local first = 7
local args = go_on_args(ARGV, first + 5 * n, worker, now, now_iso)
local k = {active_list = KEYS[1], started = KEYS[2], finished = KEYS[3], job = KEYS[4], results = KEYS[5],
  slots = KEYS[6], job_rate = KEYS[7], worker = KEYS[8], active = KEYS[9], unique = KEYS[10], queue = KEYS[11],
  scheduled = KEYS[12], deferred = KEYS[13], canceled = KEYS[14], queues = KEYS[15], batch = KEYS[16],
  batches_due = KEYS[17], outbox = KEYS[18], breaker = KEYS[19],
  by_queue = queue_keys(KEYS, 20, go_on_queues(args)), wake = ARGV[4]}
-- every job leaves the worker's in-flight list (the fence: see leave_started), or none does: with
-- several, each is looked for in the list (one read: it holds no more than the worker's threads)
-- before any leaves; one alone, its LREM is the look
if n > 1 then
  local held = {}
  for _, id in ipairs(redis.call('LRANGE', KEYS[1], '0', '-1')) do held[id] = (held[id] or 0) + 1 end
  for at = first, first + 5 * (n - 1), 5 do
    if not held[ARGV[at]] or held[ARGV[at]] == 0 then return Refusal.FENCED end
    held[ARGV[at]] = held[ARGV[at]] - 1
  end
end
for at = first, first + 5 * (n - 1), 5 do
  if not leave_started(ARGV[at], KEYS[1], queue_key(k, 'started', ARGV[at + 1]), ARGV[at + 2]) then
    return Refusal.FENCED
  end
end
local breakers = {}
for at = first, first + 5 * (n - 1), 5 do
  local id, queue, attempt = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local key = job_key(k, id)
  local job = redis.call('HMGET', key, 'result_ttl', 'jobctl_unique', 'jobctl_dependents', 'jobctl_slot',
    'jobctl_batch', 'jobctl_breaker')
  redis.call('HSET', key, 'status', 'finished', 'ended_at', now_iso, 'result', ARGV[at + 3])
  if tonumber(attempt) > 1 then
    -- a retried job that finished, as RQ leaves one: no exc_info (Job.exc_info None) and only this
    -- outcome in its results stream (RQ's worker records no result for an attempt it retries);
    -- each attempt's traceback stays in its own record (joboutput.py)
    redis.call('HDEL', key, 'exc_info')
    redis.call('DEL', results_key(k, id))
  end
  -- RQ's Job.return_value() reads the results stream
  redis.call('XADD', results_key(k, id), 'MAXLEN', '~', '10', '*', 'type', '1', 'worker_name', worker,
    'return_value', ARGV[at + 4], 'execution_ended_at', ARGV[2])
  local ttl = whole(job[1]) or RQ_RESULT_TTL
  -- RQ's result_ttl: -1 keeps the job for ever (a registry entry that never falls due), 0 keeps nothing
  if ttl > 0 then redis.call('ZADD', ended_key(k, 'finished', queue), now + ttl, id)
  elseif ttl < 0 then redis.call('ZADD', ended_key(k, 'finished', queue), '+inf', id) end
  if job[2] then release_unique(k, id) end
  if job[3] then settle_dependents(k, id, now, now_iso) end
  release_slot(k, id, job[4])
  if job[5] then batch_ended(k, id, 'succeeded', now) end
  local breaker = job_breaker_outcome(k, args.limits, id, job[6], false, now)
  if breaker ~= '' then table.insert(breakers, breaker) end
  if ttl == 0 then delete_job(k, id) end
end
local reply = go_on(k, args)
reply[2] = table.concat(breakers, '\n')
if #args.queues > 0 then
  for _, row in ipairs(start_jobs(k, worker, now, now_iso, args.queues, starts - 1)) do add_row(reply, row) end
end
return reply
