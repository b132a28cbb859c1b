-- Cancel a job: a queued, scheduled or deferred job becomes canceled (kept in the canceled
-- registry for its failure_ttl) and its deferred dependents are canceled with it, as for a dead
-- parent. A started job is asked to stop: its worker hears it on RQ's command channel (so RQ's
-- send_stop_job_command works the same) or at its next heartbeat, raises an exception in the
-- job and records it canceled; a job that ignores that is killed with its worker after a grace
-- period (the deadline moves to now: see overdue.lua), and recovery cancels it.
-- ARGV: id, now, now_iso, reason. Returns the state the job was in ('' when there is no such job).
local id, now, now_iso, reason = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local status = hget(id, 'status')
if not status then return '' end
local function tell_worker(worker)
  redis.call('PUBLISH', commands_channel(worker), cjson.encode({command = 'stop-job', job_id = id}))
end
if status == 'queued' or status == 'scheduled' or status == 'deferred' then
  if status == 'queued' then
    -- reserved by a worker (lua/lib.lua, go_on), it may be starting right now: tell the worker
    local queue = hget(id, 'origin') or ''
    for _, member in ipairs(redis.call('SMEMBERS', workers_of_queue_key(queue))) do
      local worker = string.sub(member, #worker_key('') + 1)
      if redis.call('LPOS', active_key(worker), id) then tell_worker(worker) end
    end
  end
  cancel(id, reason, now, now_iso)
  redis.call('HDEL', job_key(id), 'jobctl_scheduled_for')
  settle_dependents(id, now, now_iso)
elseif status == 'started' then
  local worker = hget(id, 'worker_name')
  redis.call('HSET', job_key(id), 'jobctl_stop_requested', reason, 'jobctl_deadline', now)
  if worker then tell_worker(worker) end
end
return status
