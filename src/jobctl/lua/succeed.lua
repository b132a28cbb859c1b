-- A job finished: record it and, in the same round trip, start the worker's next job.
-- ARGV: id, queue, worker, attempt, now, now_iso, result_json, result_b64, limits (JSON: see
-- `limits` in lib.lua), then the queues to start the worker's next job from (none: stop here).
-- Returns 'fenced' (nothing written: the job was recovered from this worker), or the next job's
-- row, or false. Job tracking is not written here: the worker counts it (tracking.py).
-- The job hash and its results stream get no EXPIRE here: the supervisors' sweep deletes them
-- once their finished-registry entry is due (sweep.lua), which keeps this script lean.
local id, queue, worker, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, now_iso = tonumber(ARGV[5]), ARGV[6]
if not leave_started(id, queue, worker, attempt) then return 'fenced' end
local key = job_key(id)
local job = redis.call('HMGET', key, 'result_ttl', 'jobctl_unique', 'jobctl_dependents', 'jobctl_slot')
redis.call('HSET', key, 'status', 'finished', 'ended_at', now_iso, 'result', ARGV[7])
-- RQ's Job.return_value() reads the results stream
redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', 10, '*', 'type', 1, 'worker_name', worker,
  'return_value', ARGV[8], 'execution_ended_at', now)
local ttl = tonumber(job[1]) or 500
-- RQ's result_ttl: -1 keeps the job for ever (a registry entry that never falls due), 0 keeps nothing
if ttl > 0 then redis.call('ZADD', 'rq:finished:' .. queue, now + ttl, id)
elseif ttl < 0 then redis.call('ZADD', 'rq:finished:' .. queue, '+inf', id) end
if job[2] then release_unique(id) end
if job[3] then settle_dependents(id, now, now_iso) end
release_slot(id, job[4])
if ttl == 0 then delete_job(id) end
limits = cjson.decode(ARGV[9])
return start_next(worker, now, now_iso, queues_from(10))
