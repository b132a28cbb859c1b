--[[ Flush a worker's job tracking (tracking.py builds the arguments, naming every key): add its
  counters, histogram buckets, throughput windows, per-minute history and processed counts; push
  its executions onto the capped histories; and show the worker's counts and state as RQ's
  readers expect.
  Input:
    KEYS[1] 'jobctl:stats:processed' hash
    KEYS[2] 'jobctl:stats:jobs' set of job types
    KEYS[3] 'jobctl:failures' list of recent failures
    KEYS[4] the worker's hash
    KEYS[5...] the stats, histogram, throughput, per-minute and history keys the payload names by
               their index in KEYS
    ARGV[1] the JSON payload of tracking.Tracker.payload
  Output:
    nothing
]]
--- @include "lib"
local t = cjson.decode(ARGV[1])

for index, c in pairs(t.counters) do
  local key = KEYS[tonumber(index)]
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
for field, count in pairs(t.processed) do incr(KEYS[1], field, count) end
if #t.job_types > 0 then redis.call('SADD', KEYS[2], unpack(t.job_types)) end
for index, buckets in pairs(t.histograms) do
  local key = KEYS[tonumber(index)]
  for bucket, count in pairs(buckets) do incr(key, bucket, count) end
end
for index, w in pairs(t.windows) do
  local key = KEYS[tonumber(index)]
  if w.finished then incr(key, 'finished', w.finished) end
  if w.failed then incr(key, 'failed', w.failed) end
  incr(key, 'run_seconds', w.run_seconds, 'HINCRBYFLOAT')
  redis.call('EXPIRE', key, t.window_ttl)
end
for index, counts in pairs(t.minutes) do
  local key = KEYS[tonumber(index)]
  for field, count in pairs(counts) do incr(key, field, count) end
  redis.call('EXPIRE', key, t.minutes_ttl)
end
for index, entries in pairs(t.history) do
  local key = KEYS[tonumber(index)]
  redis.call('LPUSH', key, unpack(entries))
  redis.call('LTRIM', key, 0, t.history_length - 1)
end
if #t.failures > 0 then
  redis.call('LPUSH', KEYS[3], unpack(t.failures))
  redis.call('LTRIM', KEYS[3], 0, t.history_length - 1)
end

-- the worker hash is its lease: never bring back one that expired or was recovered
if redis.call('EXISTS', KEYS[4]) == 1 then
  if t.done > 0 then incr(KEYS[4], 'successful_job_count', t.done) end
  if t.failed > 0 then incr(KEYS[4], 'failed_job_count', t.failed) end
  if t.working > 0 then incr(KEYS[4], 'total_working_time', t.working, 'HINCRBYFLOAT') end
  if t.current_job ~= '' then
    redis.call('HSET', KEYS[4], 'state', 'busy', 'current_job', t.current_job)
  else
    redis.call('HSET', KEYS[4], 'state', t.idle_state)  -- 'suspended' as RQ's worker shows it
    redis.call('HDEL', KEYS[4], 'current_job')
  end
end
