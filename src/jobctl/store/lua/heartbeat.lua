-- A worker's heartbeat: renew its lease (the expiring worker hash) and report which of its
-- in-flight jobs an operator asked to stop (a stop request published while the worker could not
-- hear it is not lost).
-- ARGV: worker, lease token, now_iso, ttl, cpu_percent, rss_bytes.
-- Returns 'fenced' when the lease is lost, else the ids of in-flight jobs to stop.
local worker, token, now_iso, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if not lease_holds(worker, token) then return 'fenced' end
redis.call('HSET', worker_key(worker), 'last_heartbeat', now_iso, 'jobctl_cpu_percent', ARGV[5], 'jobctl_rss_bytes', ARGV[6])
redis.call('EXPIRE', worker_key(worker), ttl)
local stop = {}
for _, id in ipairs(redis.call('LRANGE', active_key(worker), 0, -1)) do
  redis.call('HSET', job_key(id), 'last_heartbeat', now_iso)
  if hget(id, 'jobctl_stop_requested') then table.insert(stop, id) end
end
return stop
