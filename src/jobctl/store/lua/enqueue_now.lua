-- Queue a scheduled job (delayed, or waiting for its retry) now, ahead of its time.
-- ARGV: id, now_iso. Returns 1 if it was queued, 0 if it was not scheduled.
local id, now_iso = ARGV[1], ARGV[2]
if hget(id, 'status') ~= 'scheduled' then return 0 end
local queue = hget(id, 'origin')
redis.call('ZREM', scheduled_key(queue), id)
push_queued(id, queue, now_iso, false)
return 1
