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

-- The outcome scripts' first step: the job leaves the worker's in-flight list. This is also
-- their fence: a job no longer there was recovered (its worker presumed dead, and the job maybe
-- given to another), so the caller must write nothing and stop.
local function leave_started(id, queue, worker, attempt)
  if redis.call('LREM', 'jobctl:active:' .. worker, 1, id) == 0 then return false end
  redis.call('ZREM', 'rq:wip:' .. queue, id .. ':' .. attempt)
  return true
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
    local job = redis.call('HMGET', key, 'origin', 'status', 'timeout', 'data', 'jobctl_max_retries',
      'jobctl_attempts', 'jobctl_progress', 'jobctl_stop_requested')
    local queue, status = job[1], job[2]
    if status == 'queued' then
      local timeout = tonumber(job[3]) or 180
      local attempt = (tonumber(job[6]) or 0) + 1
      local fields = {'status', 'started', 'started_at', now_iso, 'worker_name', worker, 'last_heartbeat', now_iso,
        'ended_at', '', 'jobctl_deadline', now + timeout, 'jobctl_attempts', attempt}
      if not queue then
        -- a record written by another tool without its queue: it is the one it was found on
        queue = from
        table.insert(fields, 'origin')
        table.insert(fields, queue)
      end
      redis.call('HSET', key, unpack(fields))
      if job[7] or job[8] then redis.call('HDEL', key, 'jobctl_progress', 'jobctl_progress_message', 'jobctl_stop_requested') end
      redis.call('ZADD', 'rq:wip:' .. queue, now + timeout + 60, id .. ':' .. attempt)
      return {id, queue, attempt, job[4] or '', timeout, job[5] or ''}
    end
    -- canceled, expired or a stale duplicate entry: nothing to run, drop it and look again
    redis.call('LREM', active, 1, id)
  end
end

-- Give back what a gone worker held. cause: 'crash' or 'shutdown'; crash_limit: for jobs that
-- do not carry their own; how: 'worker killed by signal 9 (SIGKILL)', ...; culprit_list: when
-- not empty (the worker was killed for these jobs' overruns), only they count a crash, and the
-- other jobs it held go back as on a shutdown.
-- A job interrupted by a crash goes back to the front of its queue and counts the crash; at
-- crash_limit crashes it is dead (a poison pill must not crash-loop the fleet). Interrupted
-- attempts do not use up the job's retries. A job an operator asked to stop ends canceled.
-- Returns {requeued, buried}.
local function recover_worker(worker, now, now_iso, cause, crash_limit, how, culprit_list)
  local culprits = {}
  for _, id in ipairs(culprit_list) do culprits[id] = true end
  local blame_all = #culprit_list == 0
  local active = 'jobctl:active:' .. worker
  local worker_key = 'rq:worker:' .. worker
  local queues = redis.call('HGET', worker_key, 'queues') or ''
  local requeued, buried = 0, 0

  while true do
    local id = redis.call('RPOP', active)
    if not id then break end
    local status = hget(id, 'status')
    local queue = hget(id, 'origin')
    if (status == 'started' or status == 'queued') and queue then
      local key = job_key(id)
      if status == 'started' then
        local attempt = hget(id, 'jobctl_attempts')
        redis.call('ZREM', 'rq:wip:' .. queue, id .. ':' .. attempt)
        redis.call('HINCRBY', key, 'jobctl_attempts', -1)
        redis.call('HDEL', key, 'jobctl_deadline')
      end
      local crashes = 0
      if status == 'started' and hget(id, 'jobctl_stop_requested') then
        redis.call('HINCRBY', key, 'jobctl_attempts', 1)
        cancel(id, 'canceled while running (' .. how .. ')', now, now_iso)
        settle_dependents(id, now, now_iso)
      else
        if cause == 'crash' and status == 'started' and (blame_all or culprits[id]) then
          crashes = redis.call('HINCRBY', key, 'jobctl_crashes', 1)
          stats_count(hget(id, 'jobctl_job') or 'unknown', queue, 'crashes', 1)
          add_error(id, {attempt = tonumber(hget(id, 'jobctl_attempts')) + 1, at = now,
            error = how, worker = worker})
        end
        if crashes > 0 and crashes >= (tonumber(hget(id, 'jobctl_crash_limit')) or crash_limit) then
          redis.call('HINCRBY', key, 'jobctl_attempts', 1)
          local reason = how .. ' ' .. crashes .. (crashes == 1 and ' time' or ' times')
          -- RQ's readers (rq-dashboard, Job.latest_result) show this as the job's exception
          redis.call('HSET', key, 'exc_info', reason)
          bury(id, queue, reason, now, now_iso)
          buried = buried + 1
        else
          push_queued(id, queue, now_iso, true)
          requeued = requeued + 1
        end
      end
    end
  end

  for queue in string.gmatch(queues, '[^,]+') do
    redis.call('SREM', 'rq:workers:' .. queue, worker_key)
  end
  redis.call('SREM', 'rq:workers', worker_key)
  redis.call('SREM', 'jobctl:active-workers', worker)
  redis.call('DEL', worker_key)
  return {requeued, buried}
end

-- The queues given from ARGV[first] on, for the outcome scripts that also start the next job.
local function queues_from(first)
  local queues = {}
  for i = first, #ARGV do table.insert(queues, ARGV[i]) end
  return queues
end
