--[[ Store one job (producer.py: `jobctl enqueue`, the Python API, the scheduler, `emit`): queued,
  scheduled, deferred behind its parents (or canceled with them), unless a claim refuses it.
  The run claim (the scheduler's claim on one due time of a recurring entry) is taken here, with
  the enqueue, so that a claim is never held by a run that was not stored. unique_ttl > 0: the
  unique claim is held that long, whatever becomes of the job (Sidekiq's unique_for); 0: while
  the job is active. max_size > 0: refused when the queue holds as many.
  Input:
    KEYS[1] the job's hash (rq:job:<id>)
    KEYS[2] its queue's list (rq:queue:<queue>)
    KEYS[3] 'rq:job:' prefix: its parents' hashes and dependency sets, a claim holder's
    KEYS[4] 'rq:results:' prefix: the results stream of the id's previous run
    KEYS[5] the queue's scheduled set, KEYS[6] its deferred set
    KEYS[7] 'rq:queues' set of known queues
    KEYS[8] 'rq:finished:' prefix, KEYS[9] 'rq:failed:' prefix, KEYS[10] 'rq:canceled:' prefix:
      the registries of the queue and of the id's previous run's queue (read from its record)
    KEYS[11] 'jobctl:unique:' prefix, KEYS[12] 'jobctl:slots:' prefix (a job canceled with a parent)
    KEYS[13] 'jobctl:batch:' prefix: the hash and job set of the batch the job joins (api/batches.py),
      KEYS[14] 'jobctl:batches-due' set of batch callbacks due (a job canceled with a parent)
    KEYS[15] 'jobctl:outbox' list of entries for other queues' slots (a Redis Cluster's; lib.lua, outbox)
    ARGV[1] id
    ARGV[2] now (unix time)
    ARGV[3] now in RQ's format (created_at, enqueued_at)
    ARGV[4] run_at (unix time; 0: now)
    ARGV[5] data (the payload)
    ARGV[6] description
    ARGV[7] the unique claim's key ('': none)
    then what every job of its kind shares, built once per kind (producer.Template):
    ARGV[8] queue
    ARGV[9] the rest of the record, a JSON array of strings name, value, ... in which bytes above
            127 stand as they are (wire.raw_json: a pickle travels too)
    ARGV[10] max_size (0: none)
    ARGV[11] unique_ttl
    ARGV[12] the parents' ids, a JSON array ('': none); on a Redis Cluster a parent of another
            queue stands as [id, queue]: the job waits on it through the outbox (lib.lua, post)
    ARGV[13] 'jobctl:wake:' prefix of queues' wake channels
    ARGV[14] the batch the job joins ('': none; the record's jobctl_batch names it too)
    ARGV[15] run claim's key, ARGV[16] its owner, ARGV[17] its ttl (only for the scheduler)
  Output:
    {'ok', id, state} stored: 'queued', 'scheduled', 'deferred' or 'canceled'
    {Refusal.FULL, '', jobs queued} the queue holds max_size jobs
    {Refusal.CLAIMED, run claim's holder, ''} the run claim was held
    {Refusal.EXISTS, id, status} the id is taken by an active job
    {Refusal.DUPLICATE, holder, status} the unique claim is held by an active job
    {Refusal.RECENT, holder, seconds} the unique claim, held for unique_ttl, is held
    {Refusal.UNKNOWN_PARENT, parent, ''} a parent does not exist
    {Refusal.UNKNOWN_BATCH, batch, ''} the batch does not exist
    {Refusal.BATCH_COMPLETE, batch, ''} the batch is complete
]]
--- @include "lib"
local key, list = KEYS[1], KEYS[2]
local id, now, now_iso, run_at = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local claim, queue, max_size, unique_ttl = ARGV[7], ARGV[8], tonumber(ARGV[10]), tonumber(ARGV[11])
local k = {job = KEYS[3], results = KEYS[4], by_queue = {[queue] = {queue = list, scheduled = KEYS[5],
  deferred = KEYS[6]}}, queues = KEYS[7], finished = KEYS[8], failed = KEYS[9], canceled = KEYS[10],
  unique = KEYS[11], slots = KEYS[12], batch = KEYS[13], batches_due = KEYS[14], outbox = KEYS[15], wake = ARGV[13]}
local parents, remote = {}, {}
if ARGV[12] ~= '' then
  for _, parent in ipairs(cjson.decode(ARGV[12])) do
    table.insert(type(parent) == 'table' and remote or parents, parent)
  end
end

if max_size > 0 then
  local queued = redis.call('LLEN', list)
  if queued >= max_size then return {Refusal.FULL, '', tostring(queued)} end
end

-- on a cluster the producer joined the batch on the batch's own slot (join_batch.lua) beforehand
local batch = CLUSTER and '' or ARGV[14]
if batch ~= '' then
  local state = batch_state(k, batch)
  if not state[1] then return {Refusal.UNKNOWN_BATCH, batch, ''} end
  if state[2] == '1' then return {Refusal.BATCH_COMPLETE, batch, ''} end
end

local run_claim = ARGV[15]
if run_claim and not redis.call('SET', run_claim, ARGV[16], 'NX', 'EX', ARGV[17]) then
  return {Refusal.CLAIMED, redis.call('GET', run_claim) or '', ''}
end

local old = redis.call('HMGET', key, 'status', 'jobctl_scheduled_for')
local status = old[1]
if status and ACTIVE[status] then return {Refusal.EXISTS, id, status} end
if claim ~= '' then
  local holder = redis.call('GET', claim)
  if holder and unique_ttl > 0 then return {Refusal.RECENT, holder, tostring(redis.call('TTL', claim))} end
  if holder then
    local held = hget(k, holder, 'status')
    if held and ACTIVE[held] then return {Refusal.DUPLICATE, holder, held} end
  end
end
for _, parent in ipairs(parents) do
  if redis.call('EXISTS', job_key(k, parent)) == 0 then return {Refusal.UNKNOWN_PARENT, parent, ''} end
end

if batch ~= '' then batch_joined(k, batch, {id}) end
if status then
  -- the id is reused after its job ended: forget the old run, in its registries and in this
  -- queue's (a record whose origin was changed since, or lost, names another)
  local old_queue = redis.call('HGET', key, 'origin') or queue
  for _, registry in ipairs({'finished', 'failed', 'canceled'}) do
    redis.call('ZREM', ended_key(k, registry, old_queue), id)
    redis.call('ZREM', ended_key(k, registry, queue), id)
  end
  redis.call('DEL', key, results_key(k, id), dependencies_key(k, id), old_dependencies_key(k, id),
    remote_parents_key(k, id), remote_heard_key(k, id))
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

if #parents == 0 and #remote == 0 then
  if run_at > now then
    record[n + 1], record[n + 2], record[n + 3], record[n + 4] = 'status', 'scheduled', 'jobctl_scheduled_for', ARGV[4]
    redis.call('HSET', key, unpack(record))
    claimed()
    redis.call('ZADD', KEYS[5], ARGV[4], id)
    known_queue(k, list)  -- the promoter looks at every known queue
    return {'ok', id, 'scheduled'}
  end
  record[n + 1], record[n + 2] = 'status', 'queued'
  redis.call('HSET', key, unpack(record))
  claimed()
  wake(k, queue, redis.call('RPUSH', list, id))
  known_queue(k, list)
  return {'ok', id, 'queued'}
end

redis.call('HSET', key, unpack(record))
claimed()
for _, parent in ipairs(parents) do
  redis.call('SADD', dependencies_key(k, id), parent)
  redis.call('SADD', dependents_key(k, parent), id)
  -- the parent's outcome script settles its dependents only when this flag says it has some
  redis.call('HSET', job_key(k, parent), 'jobctl_dependents', 1)
end
for _, parent in ipairs(remote) do redis.call('HSET', remote_parents_key(k, id), cjson.encode(parent), '') end
local verdict, culprit, culprit_status = parents_verdict(k, id)
-- its parents of other queues hear of it also when another parent doomed it: requeue-dead of
-- that one brings it back to wait on them
for _, parent in ipairs(remote) do post(k, 'link', id, queue, parent[1], parent[2], '') end
if verdict == 'doomed' then
  cancel_for_parent(k, id, culprit, now, now_iso, culprit_status)
  return {'ok', id, 'canceled'}
elseif verdict == 'waiting' then
  redis.call('HSET', key, 'status', 'deferred')
  redis.call('ZADD', KEYS[6], '+inf', id)
  return {'ok', id, 'deferred'}
end
if run_at > now then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[4], id)
  known_queue(k, list)
  return {'ok', id, 'scheduled'}
end
push_queued(k, id, queue, now_iso, false)
return {'ok', id, 'queued'}
