-- Cancel a job that has not started: a queued, scheduled or deferred job becomes canceled
-- (kept in the canceled registry for its failure_ttl) and its deferred dependents are canceled
-- with it, as for a dead parent. A started job is left alone: it runs in its worker's process
-- and cannot be stopped safely from outside.
-- ARGV: id, now, now_iso, reason. Returns the state the job was in ('' when there is no such job).
local id, now, now_iso, reason = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local status = hget(id, 'status')
if not status then return '' end
if status == 'queued' or status == 'scheduled' or status == 'deferred' then
  cancel(id, reason, now, now_iso)
  redis.call('HDEL', job_key(id), 'jobctl_scheduled_for')
  settle_dependents(id, now, now_iso)
end
return status
