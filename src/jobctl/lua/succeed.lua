-- ARGV: id, queue, worker, lease token, attempt, now, now_iso, result_json, result_b64, run_seconds,
--       job_name, history_entry_json, then the queues to start the worker's next job from (none: stop here)
-- Returns 'fenced' (nothing written: the worker lost its lease), or the next job's row, or false.
local id, queue, worker, token, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, now_iso, run_seconds, job_name = tonumber(ARGV[6]), ARGV[7], ARGV[10], ARGV[11]
if not lease_holds(worker, token) then return 'fenced' end
local key = job_key(id)

leave_started(id, queue, worker, attempt)
redis.call('HSET', key, 'status', 'finished', 'ended_at', now_iso, 'result', ARGV[8])
local ttl = tonumber(hget(id, 'result_ttl')) or 500
redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', 10, '*', 'type', 1, 'worker_name', worker,
  'return_value', ARGV[9], 'execution_ended_at', now)
if ttl > 0 then
  redis.call('ZADD', 'rq:finished:' .. queue, now + ttl, id)
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', 'rq:results:' .. id, ttl)
end
release_unique(id)
settle_dependents(id, now, now_iso)

record_execution(job_name, queue, worker, true, run_seconds, now, ARGV[12], '')
return start_next(worker, now, now_iso, queues_from(13))
