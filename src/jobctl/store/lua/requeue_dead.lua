-- Bring dead jobs back to their queues with a fresh retry budget, and put back the dependents
-- their deaths canceled, unless another parent still dooms them. Idempotent: a job that is no
-- longer dead is left alone, and so is a record without a queue (another tool's), checked before
-- anything is written for it. A unique job (or dependent) takes its claim again; while a copy
-- enqueued after it ended is active, it stays as it is (two active copies is what unique refuses).
-- ARGV: now_iso, id... Returns the ids requeued.
local now_iso = ARGV[1]
-- false, with nothing written, while another active job holds the job's uniqueness claim
local function reclaim(id)
  -- only a key of jobctl's claims: a hand-edited field must not make this overwrite another key
  local claim = named_key(hget(id, 'jobctl_unique'), unique_key(''))
  if not claim then return true end
  local holder = redis.pcall('GET', claim)  -- a claim key of another type: no holder
  if type(holder) ~= 'string' then holder = nil end
  if holder and holder ~= id and ACTIVE[hget(holder, 'status') or ''] then return false end
  redis.call('SET', claim, id)
  return true
end
local requeued = {}
for index = 2, #ARGV do
  local id = ARGV[index]
  local queue = hget(id, 'origin')
  if hget(id, 'status') == 'failed' and queue and reclaim(id) then
    local key = job_key(id)
    redis.call('ZREM', dead_key(queue), id)
    redis.call('PERSIST', key)
    redis.call('HSET', key, 'jobctl_attempts', 0, 'jobctl_crashes', 0, 'ended_at', '')
    redis.call('HDEL', key, 'jobctl_reason', 'jobctl_dead', 'jobctl_progress', 'jobctl_progress_message')
    -- RQ's Retry budget too (start_next kept it)
    local retries = hget(id, 'jobctl_retries')
    if retries then redis.call('HSET', key, 'retries_left', retries) end
    push_queued(id, queue, now_iso, false)

    -- a dependent comes back only if this death (or its own parent's, down the cascade) canceled
    -- it; if another parent still dooms it, it stays canceled, naming that parent
    local pending = {id}
    while #pending > 0 do
      local parent = table.remove(pending)
      for _, child in ipairs(redis.call('SMEMBERS', dependents_key(parent))) do
        local child_queue = hget(child, 'origin')
        local verdict, culprit = nil, nil
        if hget(child, 'status') == 'canceled' and hget(child, 'jobctl_canceled_by') == parent and child_queue then
          verdict, culprit = parents_verdict(child)
        end
        if verdict == 'doomed' then
          redis.call('HSET', job_key(child), 'jobctl_canceled_by', culprit, 'jobctl_reason', doomed_by(culprit))
        elseif verdict and reclaim(child) then
          redis.call('ZREM', canceled_key(child_queue), child)
          redis.call('PERSIST', job_key(child))
          redis.call('HSET', job_key(child), 'status', 'deferred', 'ended_at', '')
          redis.call('HDEL', job_key(child), 'jobctl_reason', 'jobctl_canceled_by')
          redis.call('ZADD', deferred_key(child_queue), '+inf', child)
          table.insert(pending, child)
        end
      end
    end
    table.insert(requeued, id)
  end
end
return requeued
