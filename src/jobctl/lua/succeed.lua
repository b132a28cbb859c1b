-- ARGV: id, queue, worker, attempt, now, now_iso, result_json, result_b64, run_seconds, job_name,
--       history_entry_json, then the queues to start the worker's next job from (none: stop here)
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

record_execution(job_name, queue, worker, true, run_seconds, now, ARGV[11], '')
return start_next(worker, now, now_iso, '', queues_from(12))
