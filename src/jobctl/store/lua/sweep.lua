--[[ A supervisor's periodic sweep, in one round trip:
  1. recover the jobs of workers (on any host) whose lease lapsed: a worker in the active set
     without its hash, and not one of the caller's own live workers (those it reaps itself);
  2. delete the finished, dead and canceled jobs of the given queues whose registry entry is
     due (their ttl passed), with their results stream: at most `batch` per queue and registry,
     so a backlog of millions never blocks Redis (the next sweep goes on). A job whose id was
     reused meanwhile is only taken out of the registry. A job RQ's own API canceled is kept,
     and its dependents settled.
  Input:
    KEYS[1] 'jobctl:active-workers' set
    KEYS[2] 'rq:worker:' prefix, KEYS[3] 'jobctl:active:' prefix: the lost workers' hashes and
      in-flight lists
    KEYS[4] 'rq:job:' prefix: the hashes of the jobs recovered, deleted or settled
    KEYS[5] 'rq:results:' prefix: their results streams
    KEYS[6] 'rq:queue:' prefix, KEYS[7] 'rq:wip:' prefix, KEYS[8] 'rq:scheduled:' prefix,
      KEYS[9] 'rq:deferred:' prefix, KEYS[10] 'rq:failed:' prefix, KEYS[11] 'rq:canceled:' prefix:
      the lists and registries of the recovered jobs' queues and of dependents' queues
    KEYS[12] 'jobctl:unique:' prefix: uniqueness claims
    KEYS[13] 'jobctl:slots:' prefix: concurrency slots
    KEYS[14] 'jobctl:stats:job:' prefix, KEYS[15] 'jobctl:stats:queue:' prefix: stats hashes
    KEYS[16] 'rq:workers:' prefix: the worker sets of a lost worker's queues
    KEYS[17] 'rq:queues' set of known queues
    KEYS[18] 'rq:workers' set of worker hashes
    KEYS[19] 'jobctl:batch:' prefix: batches' hashes and failed sets,
      KEYS[20] 'jobctl:batches-due' set of batch callbacks due
    KEYS[21] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    KEYS[22...] for each queue of ARGV's queues, in order: its finished, failed and canceled
                registries
    ARGV[1] now (unix time)
    ARGV[2] now_iso
    ARGV[3] crash_limit
    ARGV[4] batch
    ARGV[5] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[6] own_count
    ARGV[7...] own_count of the caller's own workers, then the queues to sweep
  Output:
    {lost workers recovered, jobs requeued, jobs buried, jobs deleted}
]]
--- @include "lib"
local now, now_iso, crash_limit, batch = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local own_count = tonumber(ARGV[6])
local own = {}
for i = 7, 6 + own_count do own[ARGV[i]] = true end
local k = {active_workers = KEYS[1], worker = KEYS[2], active = KEYS[3], job = KEYS[4], results = KEYS[5],
  queue = KEYS[6], started = KEYS[7], scheduled = KEYS[8], deferred = KEYS[9], failed = KEYS[10],
  canceled = KEYS[11], unique = KEYS[12], slots = KEYS[13], job_stats = KEYS[14], queue_stats = KEYS[15],
  workers_of_queue = KEYS[16], queues = KEYS[17], workers = KEYS[18], batch = KEYS[19], batches_due = KEYS[20],
  outbox = KEYS[21], by_queue = {}, wake = ARGV[5]}
local queues = {}
for i = 7 + own_count, #ARGV do
  local at = 22 + 3 * #queues
  table.insert(queues, ARGV[i])
  k.by_queue[ARGV[i]] = {finished = KEYS[at], failed = KEYS[at + 1], canceled = KEYS[at + 2]}
end

local lost, requeued, buried, deleted = 0, 0, 0, 0
for _, worker in ipairs(redis.call('SMEMBERS', k.active_workers)) do
  local worker_key = k.worker .. worker
  if not own[worker] and redis.call('EXISTS', worker_key) == 0 then
    local outcome = recover_worker(k, worker, worker_key, k.active .. worker, now, now_iso, 'crash', crash_limit,
      'worker lost (no heartbeat)', {})
    lost, requeued, buried = lost + 1, requeued + outcome[1], buried + outcome[2]
  end
end

for _, queue in ipairs(queues) do
  for _, status in ipairs({'finished', 'failed', 'canceled'}) do
    local registry = ended_key(k, status, queue)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', registry, '-inf', now, 'LIMIT', 0, batch)) do
      local job = redis.call('HMGET', job_key(k, id), 'status', 'jobctl_reason')
      if status == 'canceled' and job[1] == 'canceled' and not job[2] then
        -- canceled by RQ's job.cancel(), which scores the entry with the time of the cancel and
        -- keeps the job for ever (RQ never expires its canceled registry): kept, as in RQ; its
        -- deferred dependents are settled as when jobctl cancels a job (RQ's cancel leaves them)
        redis.call('ZADD', registry, '+inf', id)
        settle_dependents(k, id, now, now_iso)
      else
        redis.call('ZREM', registry, id)
        if job[1] == status then
          delete_job(k, id)
          deleted = deleted + 1
        end
      end
    end
  end
end
return {lost, requeued, buried, deleted}
