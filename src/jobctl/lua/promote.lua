-- Queue the scheduled jobs (delayed, or waiting for a retry) whose time has come.
-- ARGV: now, now_iso, queue... Returns how many were queued.
local now, now_iso = tonumber(ARGV[1]), ARGV[2]
local moved = 0
for i = 3, #ARGV do
  local queue = ARGV[i]
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
