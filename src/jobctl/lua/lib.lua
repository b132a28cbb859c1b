-- Shared by every transition script (prepended to each). Key names mirror jobctl/keys.py.
-- Each script is one state transition, atomic in Redis: a job is always in exactly one place.

local function job_key(id) return 'rq:job:' .. id end
local ACTIVE = {queued = true, scheduled = true, deferred = true, started = true}

local function hget(id, field) return redis.call('HGET', job_key(id), field) end

local function release_unique(id)
  local claim = hget(id, 'jobctl_unique')
  if claim and redis.call('GET', claim) == id then redis.call('DEL', claim) end
end

-- A queue that was empty just got a job: wake the workers idle on it (they subscribe to this
-- channel; a busy worker fetches its next job in its outcome script and needs no wake-up).
local function wake(queue, length)
  if length == 1 then redis.call('PUBLISH', 'jobctl:wake:' .. queue, '') end
end

local function push_queued(id, queue, now_iso, front)
  redis.call('HSET', job_key(id), 'status', 'queued', 'enqueued_at', now_iso)
  redis.call('HDEL', job_key(id), 'jobctl_scheduled_for')
  wake(queue, redis.call(front and 'LPUSH' or 'RPUSH', 'rq:queue:' .. queue, id))
  redis.call('SADD', 'rq:queues', 'rq:queue:' .. queue)
end

-- Fencing: a worker holds a lease, the token in its own hash, which lives as long as its
-- heartbeats keep it alive. A worker presumed dead (hash expired or deleted by recovery) has
-- lost it, and every script it calls then refuses to act (issue 11: a frozen worker woke up and
-- ran a job a second time).
local function lease_holds(worker, token)
  return redis.call('HGET', 'rq:worker:' .. worker, 'jobctl_lease') == token
end

local function add_error(id, entry)
  local errors = cjson.decode(hget(id, 'jobctl_errors') or '[]')
  table.insert(errors, entry)
  redis.call('HSET', job_key(id), 'jobctl_errors', cjson.encode(errors))
end

-- 'ready' when every parent finished (or, for allow_failure jobs, ended at all),
-- 'doomed' when a parent died and failure is not allowed, 'waiting' otherwise.
local function parents_verdict(id)
  local allow_failure = hget(id, 'jobctl_allow_failure') == '1'
  local verdict = 'ready'
  for _, parent in ipairs(redis.call('SMEMBERS', job_key(id) .. ':dependencies')) do
    local status = hget(parent, 'status')
    -- a parent whose record expired finished long ago (dead jobs outlive finished ones)
    if status and status ~= 'finished' then
      if status == 'failed' or status == 'canceled' then
        if not allow_failure then return 'doomed', parent end
      else
        verdict = 'waiting'
      end
    end
  end
  return verdict, nil
end

local function stats_count(job_name, queue, field, by)
  redis.call('HINCRBY', 'jobctl:stats:job:' .. job_name, field, by)
  redis.call('HINCRBY', 'jobctl:stats:queue:' .. queue, field, by)
end

-- Job tracking (keys.py describes these keys): counters per job type and queue, a run-time
-- histogram, 10-second throughput windows, the recent executions and failures, all bounded.
local RUN_TIME_BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
local HISTORY_LENGTH = 100
local THROUGHPUT_WINDOW = 10

local function record_execution(job_name, queue, worker, succeeded, run_seconds, now, entry, error_line)
  local seconds = tonumber(run_seconds)
  for _, key in ipairs({'jobctl:stats:job:' .. job_name, 'jobctl:stats:queue:' .. queue}) do
    redis.call('HINCRBY', key, 'runs', 1)
    redis.call('HINCRBY', key, succeeded and 'successes' or 'failures', 1)
    redis.call('HINCRBYFLOAT', key, 'run_seconds', seconds)
    if seconds > (tonumber(redis.call('HGET', key, 'max_run_seconds')) or -1) then
      redis.call('HSET', key, 'max_run_seconds', seconds)
    end
    if succeeded then
      redis.call('HSET', key, 'last_run_at', now)
    else
      redis.call('HSET', key, 'last_run_at', now, 'last_error', error_line, 'last_error_at', now)
    end
  end
  local outcome = succeeded and 'finished' or 'failed'
  local minutes = 'jobctl:minutes:' .. queue .. ':' .. math.floor(now / 86400)  -- keys.minutes
  redis.call('HINCRBY', minutes, math.floor(now % 86400 / 60) .. ':' .. outcome, 1)
  redis.call('EXPIRE', minutes, 691200)  -- keys.MINUTES_TTL: 8 days
  redis.call('HINCRBY', 'jobctl:stats:processed', job_name .. '|' .. queue .. '|' .. outcome, 1)
  redis.call('SADD', 'jobctl:stats:jobs', job_name)
  local bucket = '+Inf'
  for _, bound in ipairs(RUN_TIME_BUCKETS) do
    if seconds <= bound then bucket = tostring(bound) break end
  end
  redis.call('HINCRBY', 'jobctl:runtime:job:' .. job_name, bucket, 1)
  local window = 'jobctl:throughput:' .. queue .. ':' .. math.floor(now / THROUGHPUT_WINDOW)
  redis.call('HINCRBY', window, succeeded and 'finished' or 'failed', 1)
  redis.call('HINCRBYFLOAT', window, 'run_seconds', seconds)
  redis.call('EXPIRE', window, 180)
  redis.call('LPUSH', 'jobctl:history:job:' .. job_name, entry)
  redis.call('LTRIM', 'jobctl:history:job:' .. job_name, 0, HISTORY_LENGTH - 1)
  if not succeeded then
    redis.call('LPUSH', 'jobctl:failures', entry)
    redis.call('LTRIM', 'jobctl:failures', 0, HISTORY_LENGTH - 1)
  end
  local worker_key = 'rq:worker:' .. worker
  redis.call('HINCRBY', worker_key, succeeded and 'successful_job_count' or 'failed_job_count', 1)
  redis.call('HINCRBYFLOAT', worker_key, 'total_working_time', seconds)
end

-- The worker hash's RQ fields after a job left it: busy with another in-flight job, or idle
-- with no current job (RQ's readers look up a current_job that is set).
local function show_worker_state(worker)
  local others = redis.call('LRANGE', 'jobctl:active:' .. worker, 0, 0)
  if #others > 0 then
    redis.call('HSET', 'rq:worker:' .. worker, 'state', 'busy', 'current_job', others[1])
  else
    redis.call('HSET', 'rq:worker:' .. worker, 'state', 'idle')
    redis.call('HDEL', 'rq:worker:' .. worker, 'current_job')
  end
end

local function cancel(id, reason, now, now_iso)
  local key = job_key(id)
  local queue = hget(id, 'origin')
  local ttl = tonumber(hget(id, 'failure_ttl')) or 2592000
  redis.call('ZREM', 'rq:deferred:' .. queue, id)
  redis.call('ZREM', 'rq:scheduled:' .. queue, id)
  redis.call('LREM', 'rq:queue:' .. queue, 0, id)
  redis.call('HSET', key, 'status', 'canceled', 'ended_at', now_iso, 'jobctl_reason', reason)
  redis.call('ZADD', 'rq:canceled:' .. queue, now + ttl, id)
  redis.call('EXPIRE', key, ttl)
  release_unique(id)
end

-- After a parent ended: queue the deferred children it was the last to wait for, and cancel
-- (with their own children: the failure cascade) those that can no longer run.
local function settle_dependents(parent_id, now, now_iso)
  local pending = {parent_id}
  while #pending > 0 do
    local parent = table.remove(pending)
    for _, child in ipairs(redis.call('SMEMBERS', job_key(parent) .. ':dependents')) do
      if hget(child, 'status') == 'deferred' then
        local verdict, culprit = parents_verdict(child)
        if verdict == 'ready' then
          local queue = hget(child, 'origin')
          redis.call('ZREM', 'rq:deferred:' .. queue, child)
          push_queued(child, queue, now_iso, false)
        elseif verdict == 'doomed' then
          cancel(child, 'parent ' .. culprit .. ' is ' .. (hget(culprit, 'status') == 'failed' and 'dead' or 'canceled'), now, now_iso)
          table.insert(pending, child)
        end
      end
    end
  end
end

local function bury(id, queue, reason, now, now_iso)
  local key = job_key(id)
  local ttl = tonumber(hget(id, 'failure_ttl')) or 2592000
  redis.call('HSET', key, 'status', 'failed', 'ended_at', now_iso, 'jobctl_reason', reason)
  redis.call('ZADD', 'rq:failed:' .. queue, now + ttl, id)
  redis.call('EXPIRE', key, ttl)
  release_unique(id)
  stats_count(hget(id, 'jobctl_job') or 'unknown', queue, 'dead', 1)
  settle_dependents(id, now, now_iso)
end

local function leave_started(id, queue, worker, attempt)
  redis.call('ZREM', 'rq:wip:' .. queue, id .. ':' .. attempt)
  redis.call('LREM', 'jobctl:active:' .. worker, 1, id)
  redis.call('HDEL', job_key(id), 'jobctl_deadline')
  show_worker_state(worker)
end

-- Start the next job for a worker: the first job of the first queue in `queues` that is not
-- paused, moved into the worker's in-flight list. Returns {id, queue, attempt, data, timeout,
-- max_retries}, or false when there is nothing to run.
local function start_next(worker, now, now_iso, queues)
  local active = 'jobctl:active:' .. worker
  while true do
    local id, from = false, nil
    for _, queue in ipairs(queues) do
      if redis.call('SISMEMBER', 'jobctl:paused', queue) == 0 then
        id = redis.call('LMOVE', 'rq:queue:' .. queue, active, 'LEFT', 'RIGHT')
        if id then from = queue break end
      end
    end
    if not id then return false end
    local key = job_key(id)
    local job = redis.call('HMGET', key, 'origin', 'status', 'timeout', 'data', 'jobctl_max_retries')
    local queue, status = job[1], job[2]
    if status == 'queued' then
      if not queue then
        -- a record written by another tool without its queue: it is the one it was found on
        queue = from
        redis.call('HSET', key, 'origin', queue)
      end
      local attempt = redis.call('HINCRBY', key, 'jobctl_attempts', 1)
      local timeout = tonumber(job[3]) or 180
      redis.call('HSET', key, 'status', 'started', 'started_at', now_iso, 'worker_name', worker,
        'last_heartbeat', now_iso, 'ended_at', '', 'jobctl_deadline', now + timeout)
      redis.call('HDEL', key, 'jobctl_progress', 'jobctl_progress_message', 'jobctl_stop_requested')
      redis.call('ZADD', 'rq:wip:' .. queue, now + timeout + 60, id .. ':' .. attempt)
      redis.call('HSET', 'rq:worker:' .. worker, 'state', 'busy', 'current_job', id)
      return {id, queue, attempt, job[4] or '', timeout, job[5] or ''}
    end
    -- canceled, expired or a stale duplicate entry: nothing to run, drop it and look again
    redis.call('LREM', active, 1, id)
  end
end

-- The queues given from ARGV[first] on, for the outcome scripts that also start the next job.
local function queues_from(first)
  local queues = {}
  for i = first, #ARGV do table.insert(queues, ARGV[i]) end
  return queues
end
