--[[ A job failed: retry it later, bury it in the dead set, or (stopped while running at an
  operator's request: jobctl cancel, RQ's send_stop_job_command) cancel it with its deferred
  dependents, or (its circuit breaker is open: BreakerOpen) defer it to when the breaker may let
  it run, its attempt unused; then start the worker's next job as succeed.lua does.
  Input:
    KEYS[1] the worker's in-flight list
    KEYS[2] the started registry of the job's queue
    KEYS[3] the scheduled set of the job's queue (a retry waits there)
    KEYS[4] 'rq:job:' prefix: the job's hash (and dependency sets), its dependents', the next jobs'
    KEYS[5] 'rq:results:' prefix: the job's results stream, a dependent's
    KEYS[6] 'jobctl:slots:' prefix: job types' concurrency slots
    KEYS[7] 'jobctl:rate:job:' prefix: job types' rate windows
    KEYS[8] 'rq:worker:' prefix: the hashes of the workers holding slots
    KEYS[9] 'jobctl:active:' prefix: their in-flight lists
    KEYS[10] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[11] 'rq:queue:' prefix, KEYS[12] 'rq:scheduled:' prefix, KEYS[13] 'rq:deferred:' prefix,
      KEYS[14] 'rq:failed:' prefix, KEYS[15] 'rq:canceled:' prefix: the lists and registries of
      the job's queue (read from its record when canceled) and of its dependents' queues
    KEYS[16] 'rq:queues' set of known queues
    KEYS[17] 'jobctl:stats:job:' prefix, KEYS[18] 'jobctl:stats:queue:' prefix: stats hashes
    KEYS[19] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[20] 'jobctl:batches-due' set of batch callbacks due
    KEYS[21] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    KEYS[22] 'jobctl:breaker:' prefix: circuit breakers' hashes (the job's breaker records it)
    KEYS[23...] for each queue of go_on_queues (lib.lua), in order: its list, started registry,
                scheduled set and rate window
    ARGV[1] job id
    ARGV[2] its queue
    ARGV[3] worker
    ARGV[4] attempt
    ARGV[5] now (unix time)
    ARGV[6] now_iso
    ARGV[7] exc_info (zlib)
    ARGV[8] exc_string (RQ's results-stream form of the traceback)
    ARGV[9] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[10] verdict ('retry'|'dead'|'canceled'|'deferred')
    ARGV[11] retry_at (unix time; 0 unless a retry), or when a deferred job comes back
    ARGV[12] the attempt's error entry (JSON)
    ARGV[13] reason
    ARGV[14] for the job's breaker: '1' a failure it counts, '0' one it does not, '' no verdict
    ARGV[15...] go_on's (go_on_args in lib.lua): start, start_queue, its attempt,
      deadline and score, reserve, limits, queues...
  Output:
    go_on's reply (lib.lua), its breaker item what the job's breaker did: 'opened <name>',
      'closed <name>' (a failure it does not count ended its trial) or ''
    Refusal.FENCED the job was recovered from this worker: nothing written
]]
--- @include "lib"
local id, queue, worker, attempt, now, now_iso = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local verdict, retry_at, reason = ARGV[10], tonumber(ARGV[11]), ARGV[13]
if not leave_started(id, KEYS[1], KEYS[2], attempt) then return Refusal.FENCED end
local args = go_on_args(ARGV, 15, worker, now, now_iso)
local k = {active_list = KEYS[1], job = KEYS[4], results = KEYS[5], slots = KEYS[6], job_rate = KEYS[7],
  worker = KEYS[8], active = KEYS[9], unique = KEYS[10], queue = KEYS[11], scheduled = KEYS[12],
  deferred = KEYS[13], failed = KEYS[14], canceled = KEYS[15], queues = KEYS[16], job_stats = KEYS[17],
  queue_stats = KEYS[18], batch = KEYS[19], batches_due = KEYS[20], outbox = KEYS[21], breaker = KEYS[22],
  by_queue = queue_keys(KEYS, 23, go_on_queues(args)), wake = ARGV[9]}
local key = job_key(k, id)
release_slot(k, id, hget(k, id, 'jobctl_slot'))
local counted = ({['1'] = true, ['0'] = false})[ARGV[14]]
local breaker = job_breaker_outcome(k, args.limits, id, hget(k, id, 'jobctl_breaker'), counted, now)
if verdict == 'deferred' then
  -- it never got to run its call: the attempt is given back, as when a limit holds a job back
  redis.call('HSET', key, 'jobctl_attempts', (whole(hget(k, id, 'jobctl_attempts')) or 1) - 1)
  redis.call('HDEL', key, 'jobctl_deadline')
  hold_back(k, id, queue, retry_at)
  local reply = go_on(k, args)
  reply[2] = breaker
  return reply
end

add_error(k, id, cjson.decode(ARGV[12]))
redis.call('HSET', key, 'exc_info', ARGV[7], 'ended_at', now_iso)
-- RQ's Job.latest_result() and rq-dashboard read the traceback from the results stream
redis.call('XADD', results_key(k, id), 'MAXLEN', '~', '10', '*', 'type', '2', 'worker_name', worker,
  'exc_string', ARGV[8], 'execution_ended_at', now)
local failure_ttl = whole(hget(k, id, 'failure_ttl')) or FAILURE_TTL
if failure_ttl >= 0 then redis.call('EXPIRE', results_key(k, id), failure_ttl) end  -- -1: kept for ever
if verdict == 'retry' then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', retry_at)
  -- RQ's Retry: the worker chose this retry from the job's own budget, which it uses up
  if hget(k, id, 'retries_left') then incr(key, 'retries_left', -1) end
  redis.call('ZADD', KEYS[3], retry_at, id)
  stats_count(k, hget(k, id, 'jobctl_job') or 'unknown', queue, 'retries', 1)
elseif verdict == 'canceled' then
  cancel(k, id, reason, now, now_iso)
  settle_dependents(k, id, now, now_iso)
else
  bury(k, id, queue, reason, now, now_iso)
end
local reply = go_on(k, args)
reply[2] = breaker
return reply
