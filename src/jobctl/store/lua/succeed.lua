-- A job finished: record it and, in the same round trip, go on with the worker's next job (go_on
-- in lib.lua). ARGV: the arguments by name (JSON: id, queue, worker, attempt, now, now_iso, and
-- go_on's), the result as JSON, the result base64-encoded (RQ's results-stream form).
-- Returns 'fenced' (nothing written: the job was recovered from this worker), or go_on's reply.
-- Job tracking is not written here: the worker counts it (tracking.py).
-- The job hash and its results stream get no EXPIRE here: the supervisors' sweep deletes them
-- once their finished-registry entry is due (sweep.lua), which keeps this script lean.
local args = cjson.decode(ARGV[1])
local id, queue, worker, now, now_iso = args.id, args.queue, args.worker, args.now, args.now_iso
if not leave_started(id, queue, worker, args.attempt) then return 'fenced' end
local key = job_key(id)
local job = redis.call('HMGET', key, 'result_ttl', 'jobctl_unique', 'jobctl_dependents', 'jobctl_slot')
redis.call('HSET', key, 'status', 'finished', 'ended_at', now_iso, 'result', ARGV[2])
if args.attempt > 1 then
  -- a retried job that finished, as RQ leaves one: no exc_info (Job.exc_info None) and only this
  -- outcome in its results stream (RQ's worker records no result for an attempt it retries);
  -- each attempt's traceback stays in its own record (joboutput.py)
  redis.call('HDEL', key, 'exc_info')
  redis.call('DEL', results_key(id))
end
-- RQ's Job.return_value() reads the results stream
redis.call('XADD', results_key(id), 'MAXLEN', '~', '10', '*', 'type', '1', 'worker_name', worker,
  'return_value', ARGV[3], 'execution_ended_at', now)
local ttl = whole(job[1]) or RQ_RESULT_TTL
-- RQ's result_ttl: -1 keeps the job for ever (a registry entry that never falls due), 0 keeps nothing
if ttl > 0 then redis.call('ZADD', finished_key(queue), now + ttl, id)
elseif ttl < 0 then redis.call('ZADD', finished_key(queue), '+inf', id) end
if job[2] then release_unique(id) end
if job[3] then settle_dependents(id, now, now_iso) end
release_slot(id, job[4])
if ttl == 0 then delete_job(id) end
return go_on(args)
