-- Give back what a gone worker held. ARGV: worker, now, now_iso, cause ('crash'|'shutdown'),
-- crash_limit (for jobs that do not carry their own), how ('worker killed by signal 9', ...),
-- then the culprits: when given (the worker was killed for these jobs' overruns), only they
-- count a crash; the other jobs it held go back as on a shutdown.
-- A job interrupted by a crash goes back to the front of its queue and counts the crash; at
-- crash_limit crashes it is dead (a poison pill must not crash-loop the fleet). Interrupted
-- attempts do not use up the job's retries. A job an operator asked to stop ends canceled.
-- Returns {requeued, buried}.
local worker, now, now_iso, cause = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local crash_limit, how = tonumber(ARGV[5]), ARGV[6]
local culprits = {}
for i = 7, #ARGV do culprits[ARGV[i]] = true end
local blame_all = #ARGV < 7
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
