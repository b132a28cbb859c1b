--[[ Cancel a job: a queued, scheduled or deferred job becomes canceled (kept in the canceled
  registry for its failure_ttl) and its deferred dependents are canceled with it, as for a dead
  parent. A started job is asked to stop: its worker hears it on RQ's command channel (so RQ's
  send_stop_job_command works the same) or at its next heartbeat, raises an exception in the
  job and records it canceled; a job that ignores that is killed with its worker after a grace
  period (the deadline moves to now: see overdue.lua), and recovery cancels it.
  Input:
    KEYS[1] 'rq:job:' prefix: the job's hash (of ARGV[1]), its dependents' and their parents'
    KEYS[2] 'rq:queue:' prefix, KEYS[3] 'rq:scheduled:' prefix, KEYS[4] 'rq:deferred:' prefix,
      KEYS[5] 'rq:canceled:' prefix: the list and registries of the job's queue and of its
      dependents' queues, read from their records
    KEYS[6] 'rq:queues' set of known queues
    KEYS[7] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[8] 'jobctl:slots:' prefix: concurrency slots
    KEYS[9] 'rq:workers:' prefix: the worker set of the job's queue (a queued job may be reserved)
    KEYS[10] 'rq:worker:' prefix: the worker keys that set holds
    KEYS[11] 'jobctl:active:' prefix: those workers' in-flight lists
    KEYS[12] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[13] 'jobctl:batches-due' set of batch callbacks due
    KEYS[14] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    ARGV[1] job id
    ARGV[2] now (unix time)
    ARGV[3] now_iso
    ARGV[4] reason
    ARGV[5] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[6] 'rq:pubsub:' prefix of workers' command channels
  Output:
    status the RQ status the job had
    '' there is no such job: nothing written
]]
--- @include "lib"
local id, now, now_iso, reason = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local k = {job = KEYS[1], queue = KEYS[2], scheduled = KEYS[3], deferred = KEYS[4], canceled = KEYS[5],
  queues = KEYS[6], unique = KEYS[7], slots = KEYS[8], workers_of_queue = KEYS[9], batch = KEYS[12],
  batches_due = KEYS[13], outbox = KEYS[14], wake = ARGV[5]}
local status = hget(k, id, 'status')
if not status then return '' end
local function tell_worker(worker)
  redis.call('PUBLISH', ARGV[6] .. worker, cjson.encode({command = 'stop-job', job_id = id}))
end
if status == 'queued' or status == 'scheduled' or status == 'deferred' then
  if status == 'queued' then
    -- reserved by a worker (lua/lib.lua, go_on), it may be starting right now: tell the worker
    local queue = hget(k, id, 'origin') or ''
    for _, member in ipairs(redis.call('SMEMBERS', queue_key(k, 'workers_of_queue', queue))) do
      local worker = string.sub(member, #KEYS[10] + 1)
      if redis.call('LPOS', KEYS[11] .. worker, id) then tell_worker(worker) end
    end
  end
  cancel(k, id, reason, now, now_iso)
  redis.call('HDEL', job_key(k, id), 'jobctl_scheduled_for')
  settle_dependents(k, id, now, now_iso)
elseif status == 'started' then
  local worker = hget(k, id, 'worker_name')
  redis.call('HSET', job_key(k, id), 'jobctl_stop_requested', reason, 'jobctl_deadline', now)
  if worker then tell_worker(worker) end
end
return status
