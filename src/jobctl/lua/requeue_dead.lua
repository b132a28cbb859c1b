-- Bring a dead job back to its queue with a fresh retry budget, and put back the dependents
-- its death canceled. Idempotent: a job that is no longer dead is left alone.
-- A unique job (or dependent) takes its claim again; while a copy enqueued after it ended is
-- active, it stays as it is (two active copies is what unique refuses).
-- ARGV: id, now, now_iso. Returns 1 if requeued, 0 if it was not dead (or a copy is active).
local id, now, now_iso = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local function reclaim(job)
  local claim = hget(job, 'jobctl_unique')
  if not claim then return true end
  local holder = redis.call('GET', claim)
  if holder and holder ~= job and ACTIVE[hget(holder, 'status') or ''] then return false end
  redis.call('SET', claim, job)
  return true
end
if hget(id, 'status') ~= 'failed' or not reclaim(id) then return 0 end
local key = job_key(id)
local queue = hget(id, 'origin')
redis.call('ZREM', dead_key(queue), id)
redis.call('PERSIST', key)
redis.call('HSET', key, 'jobctl_attempts', 0, 'jobctl_crashes', 0, 'ended_at', '')
redis.call('HDEL', key, 'jobctl_reason', 'jobctl_dead', 'jobctl_progress', 'jobctl_progress_message')
-- RQ's Retry budget too (start_next kept it)
local retries = hget(id, 'jobctl_retries')
if retries then redis.call('HSET', key, 'retries_left', retries) end
push_queued(id, queue, now_iso, false)

-- A dependent comes back only if this death (or its own parent's, down the cascade) canceled it
-- and no other parent still dooms it; if one does, it stays canceled, naming that parent.
local pending = {id}
while #pending > 0 do
  local parent = table.remove(pending)
  for _, child in ipairs(redis.call('SMEMBERS', dependents_key(parent))) do
    local verdict, culprit = nil, nil
    if hget(child, 'status') == 'canceled' and hget(child, 'jobctl_canceled_by') == parent then
      verdict, culprit = parents_verdict(child)
    end
    if verdict == 'doomed' then
      redis.call('HSET', job_key(child), 'jobctl_canceled_by', culprit, 'jobctl_reason', doomed_by(culprit))
    elseif verdict and reclaim(child) then
      local child_queue = hget(child, 'origin')
      redis.call('ZREM', canceled_key(child_queue), child)
      redis.call('PERSIST', job_key(child))
      redis.call('HSET', job_key(child), 'status', 'deferred', 'ended_at', '')
      redis.call('HDEL', job_key(child), 'jobctl_reason', 'jobctl_canceled_by')
      redis.call('ZADD', deferred_key(child_queue), '+inf', child)
      table.insert(pending, child)
    end
  end
end
return 1
