-- ARGV: id, queue, worker, attempt, now, now_iso, verdict ('retry'|'dead'), retry_at,
--       error_entry_json, exc_info (zlib), reason, run_seconds, job_name, history_entry_json, error_line,
--       exc_string (RQ's results-stream form of the traceback), then the queues to start the worker's next job from (none: stop here)
local id, queue, worker, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, now_iso, verdict, retry_at = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local run_seconds, job_name = ARGV[12], ARGV[13]
local key = job_key(id)

leave_started(id, queue, worker, attempt)
add_error(id, cjson.decode(ARGV[9]))
redis.call('HSET', key, 'exc_info', ARGV[10], 'ended_at', now_iso)
-- RQ's Job.latest_result() and rq-dashboard read the traceback from the results stream
redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', 10, '*', 'type', 2, 'worker_name', worker,
  'exc_string', ARGV[16], 'execution_ended_at', now)
redis.call('EXPIRE', 'rq:results:' .. id, tonumber(hget(id, 'failure_ttl')) or 2592000)
if verdict == 'retry' then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', retry_at)
  redis.call('ZADD', 'rq:scheduled:' .. queue, retry_at, id)
  stats_count(job_name, queue, 'retries', 1)
else
  bury(id, queue, ARGV[11], now, now_iso)
end

record_execution(job_name, queue, worker, false, run_seconds, now, ARGV[14], ARGV[15])
return start_next(worker, now, now_iso, '', queues_from(17))
