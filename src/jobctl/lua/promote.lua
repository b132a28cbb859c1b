-- Queue the scheduled jobs (delayed, or waiting for a retry) whose time has come, on every queue
-- jobctl knows. One supervisor at a time does it (the promoter: a lease renewed on each call),
-- so promotion does not multiply with the number of supervisors; the others only try to take
-- the lease over now and then, and do when its holder is gone.
-- ARGV: supervisor, lease_ms (0: give the lease up, as a stopping supervisor does), now, now_iso.
-- Returns how many were queued, or -1 when another supervisor holds the lease.
local me, lease_ms, now, now_iso = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local holder = redis.call('GET', 'jobctl:promoter')
if holder and holder ~= me then return -1 end
if lease_ms == '0' then
  if holder then redis.call('DEL', 'jobctl:promoter') end
  return 0
end
redis.call('SET', 'jobctl:promoter', me, 'PX', lease_ms)
local moved = 0
for _, queue_key in ipairs(redis.call('SMEMBERS', 'rq:queues')) do
  local queue = string.sub(queue_key, #'rq:queue:' + 1)
  local due = redis.call('ZRANGEBYSCORE', 'rq:scheduled:' .. queue, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', 'rq:scheduled:' .. queue, id)
    if hget(id, 'status') == 'scheduled' then
      push_queued(id, queue, now_iso, false)
      moved = moved + 1
    end
  end
end
return moved
