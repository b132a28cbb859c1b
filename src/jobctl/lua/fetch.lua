-- Start the next job for a worker. ARGV: worker, now, now_iso, moved_id, queue...
-- moved_id is a job the worker already moved into its in-flight list with BLMOVE ('' if none);
-- otherwise the queues are tried in the given order, skipping paused ones. Returns false when
-- there is nothing to run.
local worker, now, now_iso, moved_id = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local active = 'jobctl:active:' .. worker

while true do
  local id = moved_id
  moved_id = ''
  if id == '' then
    id = false
    for i = 5, #ARGV do
      if redis.call('SISMEMBER', 'jobctl:paused', ARGV[i]) == 0 then
        id = redis.call('LMOVE', 'rq:queue:' .. ARGV[i], active, 'LEFT', 'RIGHT')
        if id then break end
      end
    end
    if not id then return false end
  end
  local key = job_key(id)
  if redis.call('HGET', key, 'status') == 'queued' then
    local queue = redis.call('HGET', key, 'origin')
    local attempt = redis.call('HINCRBY', key, 'jobctl_attempts', 1)
    redis.call('HSET', key, 'status', 'started', 'started_at', now_iso, 'worker_name', worker,
      'last_heartbeat', now_iso, 'ended_at', '')
    redis.call('HDEL', key, 'jobctl_progress', 'jobctl_progress_message')
    local timeout = tonumber(redis.call('HGET', key, 'timeout')) or 180
    redis.call('ZADD', 'rq:wip:' .. queue, now + timeout + 60, id .. ':' .. attempt)
    redis.call('HSET', 'rq:worker:' .. worker, 'state', 'busy', 'current_job', id)
    return {id, queue, attempt, redis.call('HGET', key, 'data'), timeout,
      redis.call('HGET', key, 'jobctl_max_retries') or ''}
  end
  -- canceled, expired or a stale duplicate entry: nothing to run, drop it and look again
  redis.call('LREM', active, 1, id)
end
