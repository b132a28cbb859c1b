-- ARGV: id, queue, worker, attempt, now, now_iso, result_json, result_b64, run_seconds, job_name
local id, queue, worker, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, now_iso, run_seconds, job_name = tonumber(ARGV[5]), ARGV[6], ARGV[9], ARGV[10]
local key = job_key(id)

leave_started(id, queue, worker, attempt)
redis.call('HSET', key, 'status', 'finished', 'ended_at', now_iso, 'result', ARGV[7])
local ttl = tonumber(hget(id, 'result_ttl')) or 500
redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', 10, '*', 'type', 1, 'worker_name', worker,
  'return_value', ARGV[8], 'execution_ended_at', now)
if ttl > 0 then
  redis.call('ZADD', 'rq:finished:' .. queue, now + ttl, id)
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', 'rq:results:' .. id, ttl)
end
release_unique(id)
settle_dependents(id, now, now_iso)

stats_count(job_name, queue, 'runs', 1)
stats_count(job_name, queue, 'successes', 1)
redis.call('HINCRBYFLOAT', 'jobctl:stats:job:' .. job_name, 'run_seconds', run_seconds)
redis.call('HINCRBYFLOAT', 'jobctl:stats:queue:' .. queue, 'run_seconds', run_seconds)
local worker_key = 'rq:worker:' .. worker
redis.call('HINCRBY', worker_key, 'successful_job_count', 1)
redis.call('HINCRBYFLOAT', worker_key, 'total_working_time', run_seconds)
redis.call('HSET', worker_key, 'state', 'idle', 'current_job', '')
return 1
