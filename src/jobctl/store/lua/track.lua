-- Flush a worker's job tracking (tracking.py builds the argument, naming every key): add its
-- counters, histogram buckets, throughput windows, per-minute history and processed counts; push its executions
-- onto the capped histories; and show the worker's counts and state as RQ's readers expect.
-- ARGV: the JSON payload of tracking.Tracker.payload. Returns nothing.
local t = cjson.decode(ARGV[1])

for key, c in pairs(t.counters) do
  incr(key, 'runs', c.runs)
  if c.successes > 0 then incr(key, 'successes', c.successes) end
  if c.failures > 0 then incr(key, 'failures', c.failures) end
  incr(key, 'run_seconds', c.run_seconds, 'HINCRBYFLOAT')
  if c.max_run_seconds > (finite(redis.call('HGET', key, 'max_run_seconds')) or -1) then
    redis.call('HSET', key, 'max_run_seconds', c.max_run_seconds)
  end
  redis.call('HSET', key, 'last_run_at', c.last_run_at)
  if c.last_error then redis.call('HSET', key, 'last_error', c.last_error, 'last_error_at', c.last_error_at) end
end
for field, count in pairs(t.processed) do incr(t.processed_key, field, count) end
if #t.job_types > 0 then redis.call('SADD', t.job_types_key, unpack(t.job_types)) end
for key, buckets in pairs(t.histograms) do
  for bucket, count in pairs(buckets) do incr(key, bucket, count) end
end
for key, w in pairs(t.windows) do
  if w.finished then incr(key, 'finished', w.finished) end
  if w.failed then incr(key, 'failed', w.failed) end
  incr(key, 'run_seconds', w.run_seconds, 'HINCRBYFLOAT')
  redis.call('EXPIRE', key, t.window_ttl)
end
for key, counts in pairs(t.minutes) do
  for field, count in pairs(counts) do incr(key, field, count) end
  redis.call('EXPIRE', key, t.minutes_ttl)
end
for key, entries in pairs(t.history) do
  redis.call('LPUSH', key, unpack(entries))
  redis.call('LTRIM', key, 0, t.history_length - 1)
end
if #t.failures > 0 then
  redis.call('LPUSH', t.failures_key, unpack(t.failures))
  redis.call('LTRIM', t.failures_key, 0, t.history_length - 1)
end

-- the worker hash is its lease: never bring back one that expired or was recovered
if redis.call('EXISTS', t.worker_key) == 1 then
  if t.done > 0 then incr(t.worker_key, 'successful_job_count', t.done) end
  if t.failed > 0 then incr(t.worker_key, 'failed_job_count', t.failed) end
  if t.working > 0 then incr(t.worker_key, 'total_working_time', t.working, 'HINCRBYFLOAT') end
  if t.current_job ~= '' then
    redis.call('HSET', t.worker_key, 'state', 'busy', 'current_job', t.current_job)
  else
    redis.call('HSET', t.worker_key, 'state', t.idle_state)  -- 'suspended' as RQ's worker shows it
    redis.call('HDEL', t.worker_key, 'current_job')
  end
end
