-- Store one job (producer.py: `jobctl enqueue`, the Python API, the scheduler, `emit`).
-- KEYS[1] the job's hash (rq:job:<id>), KEYS[2] its queue's list (rq:queue:<queue>).
-- ARGV[1] id, ARGV[2] now (unix time), ARGV[3] now in RQ's format (created_at, enqueued_at),
-- ARGV[4] run_at (unix time; 0: now), ARGV[5] data (the payload), ARGV[6] description,
-- ARGV[7] the unique claim's key ('': none); then what every job of its kind shares, built once
-- per kind (producer.Template), not per call: ARGV[8] queue, ARGV[9] the rest of the record, a
-- JSON array of strings name, value, ... in which bytes above 127 stand as they are
-- (transitions.raw_json: a pickle travels too), ARGV[10] max_size (0: none), ARGV[11] unique_ttl,
-- ARGV[12] the parents' ids, a JSON array ('': none);
-- ARGV[13], ARGV[14], ARGV[15] (only for the scheduler) run claim: key, owner, ttl.
-- Replies: {'ok', id, 'queued' | 'scheduled' | 'deferred' | 'canceled'} | {'full', '', jobs queued}
--   | {'claimed', run claim's holder, ''} | {'exists', id, status} | {'duplicate', holder, status}
--   | {'recent', holder, seconds the claim is still held} | {'unknown_parent', parent, ''}
-- The run claim (the scheduler's claim on one due time of a recurring entry) is taken here, with
-- the enqueue, so that a claim is never held by a run that was not stored.
-- unique_ttl > 0: the unique claim is held that long, whatever becomes of the job (Sidekiq's
-- unique_for); 0: while the job is active. max_size > 0: refused when the queue holds as many.
local key, list = KEYS[1], KEYS[2]
local id, now, now_iso, run_at = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local claim, queue, max_size, unique_ttl = ARGV[7], ARGV[8], tonumber(ARGV[10]), tonumber(ARGV[11])
local parents = {}
if ARGV[12] ~= '' then parents = cjson.decode(ARGV[12]) end

if max_size > 0 then
  local queued = redis.call('LLEN', list)
  if queued >= max_size then return {'full', '', tostring(queued)} end
end

local run_claim = ARGV[13]
if run_claim and not redis.call('SET', run_claim, ARGV[14], 'NX', 'EX', ARGV[15]) then
  return {'claimed', redis.call('GET', run_claim) or '', ''}
end

local old = redis.call('HMGET', key, 'status', 'jobctl_scheduled_for')
local status = old[1]
if status and ACTIVE[status] then return {'exists', id, status} end
if claim ~= '' then
  local holder = redis.call('GET', claim)
  if holder and unique_ttl > 0 then return {'recent', holder, tostring(redis.call('TTL', claim))} end
  if holder then
    local held = hget(holder, 'status')
    if held and ACTIVE[held] then return {'duplicate', holder, held} end
  end
end
for _, parent in ipairs(parents) do
  if redis.call('EXISTS', job_key(parent)) == 0 then return {'unknown_parent', parent, ''} end
end

if status then
  -- the id is reused after its job ended: forget the old run, in its registries and in this
  -- queue's (a record whose origin was changed since, or lost, names another)
  local old_queue = redis.call('HGET', key, 'origin') or queue
  for _, registry in ipairs({'finished', 'failed', 'canceled'}) do
    redis.call('ZREM', ended_key(registry, old_queue), id)
    redis.call('ZREM', ended_key(registry, queue), id)
  end
  redis.call('DEL', key, results_key(id), dependencies_key(id), old_dependencies_key(id))
elseif old[2] then
  redis.call('HDEL', key, 'jobctl_scheduled_for')  -- a record without a status, of another tool
end

-- the record in one HSET: the shared fields, then the call's (a later field wins)
local record = cjson.decode(ARGV[9])
local n = #record
record[n + 1], record[n + 2], record[n + 3], record[n + 4] = 'created_at', now_iso, 'enqueued_at', now_iso
record[n + 5], record[n + 6], record[n + 7], record[n + 8] = 'data', ARGV[5], 'description', ARGV[6]
n = n + 8
if claim ~= '' and unique_ttl <= 0 then
  record[n + 1], record[n + 2] = 'jobctl_unique', claim
  n = n + 2
end
local function claimed()
  if claim ~= '' and unique_ttl > 0 then
    redis.call('SET', claim, id, 'EX', math.ceil(unique_ttl))
  elseif claim ~= '' then
    redis.call('SET', claim, id)
  end
end

if #parents == 0 then
  if run_at > now then
    record[n + 1], record[n + 2], record[n + 3], record[n + 4] = 'status', 'scheduled', 'jobctl_scheduled_for', ARGV[4]
    redis.call('HSET', key, unpack(record))
    claimed()
    redis.call('ZADD', scheduled_key(queue), ARGV[4], id)
    redis.call('SADD', QUEUES, list)  -- the promoter looks at every known queue
    return {'ok', id, 'scheduled'}
  end
  record[n + 1], record[n + 2] = 'status', 'queued'
  redis.call('HSET', key, unpack(record))
  claimed()
  wake(queue, redis.call('RPUSH', list, id))
  redis.call('SADD', QUEUES, list)
  return {'ok', id, 'queued'}
end

redis.call('HSET', key, unpack(record))
claimed()
for _, parent in ipairs(parents) do
  redis.call('SADD', dependencies_key(id), parent)
  redis.call('SADD', dependents_key(parent), id)
  -- the parent's outcome script settles its dependents only when this flag says it has some
  redis.call('HSET', job_key(parent), 'jobctl_dependents', 1)
end
local verdict, culprit = parents_verdict(id)
if verdict == 'doomed' then
  cancel_for_parent(id, culprit, now, now_iso)
  return {'ok', id, 'canceled'}
elseif verdict == 'waiting' then
  redis.call('HSET', key, 'status', 'deferred')
  redis.call('ZADD', deferred_key(queue), '+inf', id)
  return {'ok', id, 'deferred'}
end
if run_at > now then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', ARGV[4])
  redis.call('ZADD', scheduled_key(queue), ARGV[4], id)
  redis.call('SADD', QUEUES, list)
  return {'ok', id, 'scheduled'}
end
push_queued(id, queue, now_iso, false)
return {'ok', id, 'queued'}
