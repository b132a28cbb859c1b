-- ARGV: id, queue, worker, lease token, attempt, now, now_iso, verdict ('retry'|'dead'|'canceled'),
--       retry_at, error_entry_json, exc_info (zlib), reason, run_seconds, job_name, history_entry_json,
--       error_line, exc_string (RQ's results-stream form of the traceback), then the queues to
--       start the worker's next job from (none: stop here)
-- 'canceled': the job was stopped while running at an operator's request (jobctl cancel, RQ's
-- send_stop_job_command); it ends canceled, as do its deferred dependents.
-- Returns 'fenced' (nothing written: the worker lost its lease), or the next job's row, or false.
local id, queue, worker, token, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, now_iso, verdict, retry_at = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9]
local run_seconds, job_name = ARGV[13], ARGV[14]
if not lease_holds(worker, token) then return 'fenced' end
local key = job_key(id)

leave_started(id, queue, worker, attempt)
add_error(id, cjson.decode(ARGV[10]))
redis.call('HSET', key, 'exc_info', ARGV[11], 'ended_at', now_iso)
-- RQ's Job.latest_result() and rq-dashboard read the traceback from the results stream
redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', 10, '*', 'type', 2, 'worker_name', worker,
  'exc_string', ARGV[17], 'execution_ended_at', now)
redis.call('EXPIRE', 'rq:results:' .. id, tonumber(hget(id, 'failure_ttl')) or 2592000)
if verdict == 'retry' then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', retry_at)
  redis.call('ZADD', 'rq:scheduled:' .. queue, retry_at, id)
  stats_count(job_name, queue, 'retries', 1)
elseif verdict == 'canceled' then
  cancel(id, ARGV[12], now, now_iso)
  settle_dependents(id, now, now_iso)
else
  bury(id, queue, ARGV[12], now, now_iso)
end

record_execution(job_name, queue, worker, false, run_seconds, now, ARGV[15], ARGV[16])
return start_next(worker, now, now_iso, queues_from(18))
