-- Give back what a gone worker held. ARGV: worker, now, now_iso, cause ('crash'|'shutdown'),
-- crash_limit (for jobs that do not carry their own), how ('signal 9', 'exit status 1', 'lost heartbeat', ...)
-- A job interrupted by a crash goes back to the front of its queue and counts the crash; at
-- crash_limit crashes it is dead (a poison pill must not crash-loop the fleet). Interrupted
-- attempts do not use up the job's retries. Returns {requeued, buried}.
local worker, now, now_iso, cause = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local crash_limit, how = tonumber(ARGV[5]), ARGV[6]
local active = 'jobctl:active:' .. worker
local requeued, buried = 0, 0

while true do
  local id = redis.call('RPOP', active)
  if not id then break end
  local status = hget(id, 'status')
  if status == 'started' or status == 'queued' then
    local key = job_key(id)
    local queue = hget(id, 'origin')
    if status == 'started' then
      local attempt = hget(id, 'jobctl_attempts')
      redis.call('ZREM', 'rq:wip:' .. queue, id .. ':' .. attempt)
      redis.call('HINCRBY', key, 'jobctl_attempts', -1)
    end
    local crashes = 0
    if cause == 'crash' and status == 'started' then
      crashes = redis.call('HINCRBY', key, 'jobctl_crashes', 1)
      stats_count(hget(id, 'jobctl_job') or 'unknown', queue, 'crashes', 1)
      add_error(id, {attempt = tonumber(hget(id, 'jobctl_attempts')) + 1, at = now,
        error = 'worker crashed (' .. how .. ')', worker = worker})
    end
    if crashes >= (tonumber(hget(id, 'jobctl_crash_limit')) or crash_limit) then
      redis.call('HINCRBY', key, 'jobctl_attempts', 1)
      bury(id, queue, 'worker crashed (' .. how .. ') ' .. crashes .. ' times', now, now_iso)
      buried = buried + 1
    else
      push_queued(id, queue, now_iso, true)
      requeued = requeued + 1
    end
  end
end

local worker_key = 'rq:worker:' .. worker
local queues = redis.call('HGET', worker_key, 'queues') or ''
for queue in string.gmatch(queues, '[^,]+') do
  redis.call('SREM', 'rq:workers:' .. queue, worker_key)
end
redis.call('SREM', 'rq:workers', worker_key)
redis.call('SREM', 'jobctl:active-workers', worker)
redis.call('DEL', worker_key)
return {requeued, buried}
