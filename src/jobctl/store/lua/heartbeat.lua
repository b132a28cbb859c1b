--[[ A worker's heartbeat: renew its lease (the expiring worker hash) and report which of its
  in-flight jobs an operator asked to stop (a stop request published while the worker could not
  hear it is not lost).
  Input:
    KEYS[1] the worker's hash, which holds its lease
    KEYS[2] the worker's in-flight list
    KEYS[3] 'rq:job:' prefix: the hashes of its in-flight jobs
    ARGV[1] lease token
    ARGV[2] now_iso
    ARGV[3] ttl (seconds)
    ARGV[4] cpu_percent
    ARGV[5] rss_bytes
  Output:
    {id, ...} the ids of in-flight jobs to stop
    Refusal.FENCED the lease is lost: nothing written
]]
--- @include "lib"
local token, now_iso, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local worker_key, job = KEYS[1], KEYS[3]
if not lease_holds(worker_key, token) then return Refusal.FENCED end
redis.call('HSET', worker_key, 'last_heartbeat', now_iso, 'jobctl_cpu_percent', ARGV[4], 'jobctl_rss_bytes', ARGV[5])
redis.call('EXPIRE', worker_key, ttl)
local stop = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  redis.call('HSET', job .. id, 'last_heartbeat', now_iso)
  if redis.call('HGET', job .. id, 'jobctl_stop_requested') then table.insert(stop, id) end
end
return stop
