-- Queue the scheduled jobs (delayed, or waiting for a retry) whose time has come, on every queue
-- jobctl knows, and adopt the deferred jobs RQ's own API stored (adopt_deferred in lib.lua). One supervisor at a time does it (the promoter: a lease renewed on each call),
-- so promotion does not multiply with the number of supervisors; the others only try to take
-- the lease over now and then, and do when its holder is gone.
-- ARGV: supervisor, lease_ms (0: give the lease up, as a stopping supervisor does), now, now_iso.
-- Returns how many were queued, or -1 when another supervisor holds the lease.
local me, lease_ms, now, now_iso = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local holder = redis.call('GET', PROMOTER)
if holder and holder ~= me then return -1 end
if lease_ms == '0' then
  if holder then redis.call('DEL', PROMOTER) end
  return 0
end
redis.call('SET', PROMOTER, me, 'PX', lease_ms)
local moved = 0
for _, member in ipairs(redis.call('SMEMBERS', QUEUES)) do
  local queue = string.sub(member, #queue_key('') + 1)
  local due = redis.call('ZRANGEBYSCORE', scheduled_key(queue), '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', scheduled_key(queue), id)
    if hget(id, 'status') == 'scheduled' then
      push_queued(id, queue, now_iso, false)
      moved = moved + 1
    end
  end
  adopt_deferred(queue, now, now_iso)
end
return moved
