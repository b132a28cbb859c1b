-- A supervisor's periodic sweep, in one round trip:
-- 1. recover the jobs of workers (on any host) whose lease lapsed: a worker in the active set
--    without its hash, and not one of the caller's own live workers (those it reaps itself);
-- 2. delete the finished, dead and canceled jobs of the given queues whose registry entry is
--    due (their ttl passed), with their results stream: at most `batch` per queue and registry,
--    so a backlog of millions never blocks Redis (the next sweep goes on). A job whose id was
--    reused meanwhile is only taken out of the registry. A job RQ's own API canceled is kept,
--    and its dependents settled.
-- ARGV: now, now_iso, crash_limit, batch, own_count, own worker..., queue...
-- Returns {lost workers recovered, jobs requeued, jobs buried, jobs deleted}.
local now, now_iso, crash_limit, batch = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local own_count = tonumber(ARGV[5])
local own = {}
for i = 6, 5 + own_count do own[ARGV[i]] = true end

local lost, requeued, buried, deleted = 0, 0, 0, 0
for _, worker in ipairs(redis.call('SMEMBERS', ACTIVE_WORKERS)) do
  if not own[worker] and redis.call('EXISTS', worker_key(worker)) == 0 then
    local outcome = recover_worker(worker, now, now_iso, 'crash', crash_limit, 'worker lost (no heartbeat)', {})
    lost, requeued, buried = lost + 1, requeued + outcome[1], buried + outcome[2]
  end
end

for i = 6 + own_count, #ARGV do
  local queue = ARGV[i]
  for _, status in ipairs({'finished', 'failed', 'canceled'}) do
    local registry = ended_key(status, queue)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', registry, '-inf', now, 'LIMIT', 0, batch)) do
      local job = redis.call('HMGET', job_key(id), 'status', 'jobctl_reason')
      if status == 'canceled' and job[1] == 'canceled' and not job[2] then
        -- canceled by RQ's job.cancel(), which scores the entry with the time of the cancel and
        -- keeps the job for ever (RQ never expires its canceled registry): kept, as in RQ; its
        -- deferred dependents are settled as when jobctl cancels a job (RQ's cancel leaves them)
        redis.call('ZADD', registry, '+inf', id)
        settle_dependents(id, now, now_iso)
      else
        redis.call('ZREM', registry, id)
        if job[1] == status then
          delete_job(id)
          deleted = deleted + 1
        end
      end
    end
  end
end
return {lost, requeued, buried, deleted}
