-- A job failed: retry it later, bury it in the dead set, or (stopped while running at an
-- operator's request: jobctl cancel, RQ's send_stop_job_command) cancel it with its deferred
-- dependents; then start the worker's next job as succeed.lua does.
-- ARGV: the arguments by name (JSON: id, queue, worker, attempt, now, now_iso, verdict
--       ('retry'|'dead'|'canceled'), retry_at, error (the attempt's entry), reason, and go_on's),
--       exc_info (zlib), exc_string (RQ's results-stream form of the traceback).
-- Returns 'fenced' (nothing written: the job was recovered from this worker), or go_on's reply.
local args = cjson.decode(ARGV[1])
local id, queue, worker, now, now_iso = args.id, args.queue, args.worker, args.now, args.now_iso
local verdict, retry_at, reason = args.verdict, args.retry_at, args.reason
if not leave_started(id, queue, worker, args.attempt) then return 'fenced' end
local key = job_key(id)
release_slot(id, hget(id, 'jobctl_slot'))

add_error(id, args.error)
redis.call('HSET', key, 'exc_info', ARGV[2], 'ended_at', now_iso)
-- RQ's Job.latest_result() and rq-dashboard read the traceback from the results stream
redis.call('XADD', results_key(id), 'MAXLEN', '~', '10', '*', 'type', '2', 'worker_name', worker,
  'exc_string', ARGV[3], 'execution_ended_at', now)
local failure_ttl = whole(hget(id, 'failure_ttl')) or FAILURE_TTL
if failure_ttl >= 0 then redis.call('EXPIRE', results_key(id), failure_ttl) end  -- -1: kept for ever
if verdict == 'retry' then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', retry_at)
  -- RQ's Retry: the worker chose this retry from the job's own budget, which it uses up
  if hget(id, 'retries_left') then incr(key, 'retries_left', -1) end
  redis.call('ZADD', scheduled_key(queue), retry_at, id)
  stats_count(hget(id, 'jobctl_job') or 'unknown', queue, 'retries', 1)
elseif verdict == 'canceled' then
  cancel(id, reason, now, now_iso)
  settle_dependents(id, now, now_iso)
else
  bury(id, queue, reason, now, now_iso)
end
return go_on(args)
