-- A job failed: retry it later, bury it in the dead set, or (stopped while running at an
-- operator's request: jobctl cancel, RQ's send_stop_job_command) cancel it with its deferred
-- dependents; then start the worker's next job as succeed.lua does.
-- ARGV: id, queue, worker, attempt, now, now_iso, verdict ('retry'|'dead'|'canceled'), retry_at,
--       error_entry_json, exc_info (zlib), reason, exc_string (RQ's results-stream form of the
--       traceback), limits (JSON: see `limits` in lib.lua), then the queues to start the worker's
--       next job from (none: stop here).
-- Returns 'fenced' (nothing written: the job was recovered from this worker), or the next job's
-- row, or false.
local id, queue, worker, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, now_iso, verdict, retry_at = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
if not leave_started(id, queue, worker, attempt) then return 'fenced' end
local key = job_key(id)
release_slot(id, hget(id, 'jobctl_slot'))

add_error(id, cjson.decode(ARGV[9]))
redis.call('HSET', key, 'exc_info', ARGV[10], 'ended_at', now_iso)
-- RQ's Job.latest_result() and rq-dashboard read the traceback from the results stream
redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', 10, '*', 'type', 2, 'worker_name', worker,
  'exc_string', ARGV[12], 'execution_ended_at', now)
local failure_ttl = tonumber(hget(id, 'failure_ttl')) or 2592000
if failure_ttl >= 0 then redis.call('EXPIRE', 'rq:results:' .. id, failure_ttl) end  -- -1: kept for ever
if verdict == 'retry' then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', retry_at)
  -- RQ's Retry: the worker chose this retry from the job's own budget, which it uses up
  if hget(id, 'retries_left') then redis.call('HINCRBY', key, 'retries_left', -1) end
  redis.call('ZADD', 'rq:scheduled:' .. queue, retry_at, id)
  stats_count(hget(id, 'jobctl_job') or 'unknown', queue, 'retries', 1)
elseif verdict == 'canceled' then
  cancel(id, ARGV[11], now, now_iso)
  settle_dependents(id, now, now_iso)
else
  bury(id, queue, ARGV[11], now, now_iso)
end
limits = cjson.decode(ARGV[13])
return start_next(worker, now, now_iso, queues_from(14))
